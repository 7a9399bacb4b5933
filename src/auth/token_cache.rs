//! Verified tokens remembered until they expire, so that a token costs one signature check per
//! process rather than one per request (why, and the bound: docs/API.md, Speed).
//!
//! A token is remembered by the SHA-256 of its bytes, never the token itself: the memory holds
//! nothing a request could replay, and two tokens that differ in any byte are two entries. The
//! map is split in shards, each behind a read-write lock: a lookup only reads, so the requests
//! of one busy token never wait on each other; an insert writes. It is bounded: a full shard
//! first drops what has expired, then an arbitrary entry (that token is simply verified again).
//! When the issuer withdraws a key, everything is forgotten, and a verification that was already
//! under way with the old keys is not remembered: each forgetting starts a new `Era`, and a token
//! is remembered only in the era its verification began in.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use ring::digest::{SHA256, digest};

use super::verify::Principal;

/// Tokens remembered at most: about 100 bytes each, so about 1 MiB when full, for ten thousand
/// clients active within their tokens' lifetime on one replica.
const CAPACITY: usize = 10_240;
/// Shards, so that requests on different workers rarely wait on one lock.
const SHARDS: usize = 16;
const SHARD_CAPACITY: usize = CAPACITY / SHARDS;

/// The SHA-256 of a token: what it is remembered by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct TokenDigest([u8; 32]);

#[derive(Default)]
pub(super) struct RememberedTokens {
    shards: [RwLock<Shard>; SHARDS],
    /// How many times everything was forgotten.
    forgettings: AtomicU64,
}

/// When a verification began, as `RememberedTokens::era` tells: read before the keys it uses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Era(u64);

type Shard = HashMap<TokenDigest, Arc<Principal>, BuildHasherDefault<DigestHasher>>;

impl TokenDigest {
    pub(super) fn of(token: &[u8]) -> TokenDigest {
        TokenDigest(digest(&SHA256, token).as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }

    fn shard(&self) -> usize {
        usize::from(self.0[31]) % SHARDS
    }
}

/// A digest is already uniformly distributed: its first eight bytes are its hash.
impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_ne_bytes(self.0[..8].try_into().expect("eight bytes")));
    }
}

/// Passes a `TokenDigest`'s own hash through.
#[derive(Default)]
pub(super) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl RememberedTokens {
    /// The principal of a token verified before, unless it has expired by `now` (seconds since
    /// the epoch). An expired entry stays until an insert into its shard makes room.
    pub(super) fn get(&self, token: &TokenDigest, now: u64) -> Option<Arc<Principal>> {
        self.shards[token.shard()]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .filter(|principal| principal.expires_at > now)
            .cloned()
    }

    /// The era a verification begins in; read it before taking the keys to verify with.
    pub(super) fn era(&self) -> Era {
        Era(self.forgettings.load(Ordering::Acquire))
    }

    /// Remembers a verified token until its `exp`, unless everything was forgotten since its
    /// verification began (`verified_in`): the key it was verified with may be withdrawn.
    pub(super) fn remember(&self, token: TokenDigest, principal: Arc<Principal>, now: u64, verified_in: Era) {
        if principal.expires_at <= now {
            return;
        }
        let mut shard = self.shards[token.shard()]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the shard's lock: a `forget_all` that began after this check clears this entry.
        if self.era() != verified_in {
            return;
        }
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(&token) {
            shard.retain(|_, remembered| remembered.expires_at > now);
            if shard.len() >= SHARD_CAPACITY
                && let Some(any) = shard.keys().next().copied()
            {
                shard.remove(&any);
            }
        }
        shard.insert(token, principal);
    }

    /// Forgets every token, and refuses those whose verification began before (see `remember`).
    pub(super) fn forget_all(&self) {
        self.forgettings.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            shard.write().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// How many tokens are remembered now, for `/metrics`.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scopes::Grants;

    fn principal(subject: &str, expires_at: u64) -> Arc<Principal> {
        Arc::new(Principal {
            subject: subject.into(),
            grants: Grants::default(),
            expires_at,
        })
    }

    #[test]
    fn a_token_is_remembered_by_its_digest_until_it_expires() {
        let tokens = RememberedTokens::default();
        let token = TokenDigest::of(b"header.claims.signature");
        tokens.remember(token, principal("alice", 1_000), 500, tokens.era());
        assert_eq!(&*tokens.get(&token, 999).unwrap().subject, "alice");
        assert!(tokens.get(&TokenDigest::of(b"header.claims.signaturf"), 999).is_none());
        assert!(tokens.get(&token, 1_000).is_none(), "expired at exp");
        let other = TokenDigest::of(b"another.token.entirely");
        tokens.remember(other, principal("bob", 1_000), 1_000, tokens.era());
        assert!(tokens.get(&other, 999).is_none(), "an expired token is not remembered");
    }

    #[test]
    fn memory_is_bounded_and_a_full_shard_makes_room() {
        let tokens = RememberedTokens::default();
        for number in 0..CAPACITY * 3 {
            tokens.remember(
                TokenDigest::of(number.to_string().as_bytes()),
                principal("u", 2_000),
                1_000,
                tokens.era(),
            );
        }
        assert!(tokens.len() <= CAPACITY, "{}", tokens.len());
        let newest = TokenDigest::of(b"newest");
        tokens.remember(newest, principal("newest", 2_000), 1_000, tokens.era());
        assert!(
            tokens.get(&newest, 1_000).is_some(),
            "the newest token always finds room"
        );
        tokens.forget_all();
        assert_eq!(tokens.len(), 0);
    }

    #[test]
    fn a_token_verified_while_a_key_was_withdrawn_is_not_remembered() {
        let tokens = RememberedTokens::default();
        let token = TokenDigest::of(b"signed.with.the.withdrawn.key");
        let verification_began = tokens.era();
        // The issuer's new key set, without the key, arrives while the token is being verified.
        tokens.forget_all();
        tokens.remember(token, principal("mallory", 2_000), 1_000, verification_began);
        assert!(
            tokens.get(&token, 1_000).is_none(),
            "it is verified again, against the new keys"
        );
        tokens.remember(token, principal("mallory", 2_000), 1_000, tokens.era());
        assert!(
            tokens.get(&token, 1_000).is_some(),
            "a verification begun after is remembered"
        );
    }
}
