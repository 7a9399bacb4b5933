//! 128 random-looking bits per call, never the same twice in a process, made without a system
//! call or the heap: request ids, trace ids and span ids all come from here.
//!
//! A per-process random seed (asked of the OS once) is mixed with a counter through SplitMix64,
//! which is a bijection: different counter values give different outputs, so values never repeat
//! within a process, and the seed makes them differ between processes. Each half is unique on its
//! own, so the first eight bytes alone are still a process-unique 64-bit id. Threads take counter
//! values in blocks, so making an id touches no cache line another core is writing.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counter values a thread takes at once from the shared counter.
const BLOCK: u64 = 1 << 16;

/// The next 128 bits.
pub(crate) fn next() -> [u8; 16] {
    static SEED: OnceLock<u64> = OnceLock::new();
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let count = next_count();
    let high = splitmix64(seed ^ count);
    let low = splitmix64(high ^ seed.rotate_left(32));
    ((u128::from(high) << 64) | u128::from(low)).to_be_bytes()
}

/// Writes `bytes` into `text` as lower-case hex, two digits a byte, as far as `text` reaches.
pub(crate) fn write_lower_hex(bytes: &[u8], text: &mut [u8]) {
    const DIGIT: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGIT[usize::from(byte >> 4)];
        pair[1] = DIGIT[usize::from(byte & 0x0f)];
    }
}

/// A counter value no other call in the process gets.
fn next_count() -> u64 {
    static SHARED: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        /// The next value of this thread's block, and the end of the block.
        static BLOCK_OF_THIS_THREAD: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    BLOCK_OF_THIS_THREAD.with(|block| {
        let (mut next, mut end) = block.get();
        if next == end {
            next = SHARED.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        block.set((next + 1, end));
        next
    })
}

fn splitmix64(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    state = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    state ^ (state >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte_as_far_as_the_text_reaches() {
        let mut text = [b'.'; 6];
        write_lower_hex(&[0xab, 0x09, 0xf0, 0x11], &mut text);
        assert_eq!(&text, b"ab09f0");
    }

    #[test]
    fn values_and_their_first_halves_never_repeat_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..BLOCK + 10).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let values: Vec<[u8; 16]> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
        let whole: HashSet<_> = values.iter().collect();
        let first_halves: HashSet<_> = values.iter().map(|value| &value[..8]).collect();
        assert_eq!(whole.len(), values.len());
        assert_eq!(first_halves.len(), values.len());
    }
}
