//! The `users` table: one function per query, each with its SQL beside it.
//!
//! Every statement is prepared once per connection (`db::Statements`); rows become
//! `User`s through `TryFrom<&Row>`. Reads run on the shared read connections, the write statements
//! on a write connection of the caller's own (`crate::writes`).

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::Database;
use crate::db::keeper::LiveConnection;
use crate::error::Error;
use crate::user::User;
use crate::user::input::{AvatarUrl, Email, NewUser, UserPatch};
use crate::user::page::{Cursor, PageRequest};

/// One page of users, newest first, and where the next one starts.
#[derive(Debug)]
pub(crate) struct UserPage {
    pub(crate) users: Vec<User>,
    pub(crate) next: Option<Cursor>,
}

/// The users of a batch of concurrent lookups by id, in any order; missing ids are simply absent.
pub(super) const FIND_USERS: &str =
    "SELECT id, name, email, avatar_url, created_at, updated_at FROM users WHERE id = ANY($1::uuid[])";

/// Any number of new users in one statement (one commit, one WAL flush for all of them). Each
/// input row keeps its position (`ord`), so every request is answered from its own row. A row
/// whose email is taken — by a stored user or by an earlier row of the same batch — is skipped by
/// `ON CONFLICT DO NOTHING` and comes back with a NULL id: that request's 409. Ids are made in
/// the materialised `input` so the join can find each inserted row again.
pub(super) const INSERT_USERS: &str = "WITH input AS MATERIALIZED ( \
       SELECT gen_random_uuid() AS id, name, email, avatar_url, ord \
       FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS given(name, email, avatar_url, ord) \
     ), inserted AS ( \
       INSERT INTO users (id, name, email, avatar_url) \
       SELECT id, name, email, avatar_url FROM input ORDER BY ord \
       ON CONFLICT DO NOTHING \
       RETURNING id, name, email, avatar_url, created_at, updated_at \
     ) \
     SELECT inserted.id, inserted.name, inserted.email, inserted.avatar_url, inserted.created_at, inserted.updated_at \
     FROM input LEFT JOIN inserted ON inserted.id = input.id ORDER BY input.ord";

/// The same for a batch of one, the usual case at low load: a plain insert costs Postgres a third
/// less than the batch statement's CTE and join. A taken email returns no row.
pub(super) const INSERT_USER: &str = "INSERT INTO users (name, email, avatar_url) VALUES ($1, $2, $3) \
     ON CONFLICT DO NOTHING \
     RETURNING id, name, email, avatar_url, created_at, updated_at";

/// Absent fields keep their value: `$3`/`$5` say whether email/avatar_url are being set at all,
/// so that "set to null" and "leave alone" stay apart.
pub(super) const UPDATE_USER: &str = "UPDATE users SET \
       name = COALESCE($2, name), \
       email = CASE WHEN $3 THEN $4 ELSE email END, \
       avatar_url = CASE WHEN $5 THEN $6 ELSE avatar_url END, \
       updated_at = now() \
     WHERE id = $1 \
     RETURNING id, name, email, avatar_url, created_at, updated_at";

pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

/// Newest first; `(created_at, id)` is unique, so the order is total and pages never overlap.
/// `$1` is one more than the page size, to learn whether another page follows.
pub(super) const LIST_FIRST: &str = "SELECT id, name, email, avatar_url, created_at, updated_at FROM users \
     ORDER BY created_at DESC, id DESC LIMIT $1";

pub(super) const LIST_AFTER: &str = "SELECT id, name, email, avatar_url, created_at, updated_at FROM users \
     WHERE (created_at, id) < ($1, $2) \
     ORDER BY created_at DESC, id DESC LIMIT $3";

/// The constraints that make an email unique (the table's own, and the case-insensitive index).
const EMAIL_CONSTRAINTS: [&str; 2] = ["users_email_key", "users_email_lower_key"];

impl TryFrom<&Row> for User {
    type Error = tokio_postgres::Error;

    fn try_from(row: &Row) -> Result<User, tokio_postgres::Error> {
        Ok(User {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            email: row.try_get(2)?,
            avatar_url: row.try_get(3)?,
            created_at: row.try_get(4)?,
            updated_at: row.try_get(5)?,
        })
    }
}

/// The users among `ids` (read on the shared read connections, retried when one dies).
pub(crate) async fn find_users(db: &Database, ids: &[Uuid]) -> Result<Vec<User>, Error> {
    let rows = read_with_retry!(db.reads(), |connection| connection
        .client
        .query(&connection.statements.find_many, &[&ids]))?;
    Ok(rows.iter().map(User::try_from).collect::<Result<_, _>>()?)
}

/// Inserts a batch (alone, or inside the caller's transaction); one entry per input row, in
/// order: the stored user, or `None` when its email was taken.
pub(crate) async fn insert_users<'a>(
    connection: &LiveConnection,
    new_users: impl Iterator<Item = &'a NewUser>,
) -> Result<Vec<Option<User>>, tokio_postgres::Error> {
    let (mut names, mut emails, mut avatar_urls) = (Vec::new(), Vec::new(), Vec::new());
    for user in new_users {
        names.push(user.name.as_str());
        emails.push(user.email.as_ref().map(Email::as_str));
        avatar_urls.push(user.avatar_url.as_ref().map(AvatarUrl::as_str));
    }
    let statements = &connection.statements;
    if let ([name], [email], [avatar_url]) = (&names[..], &emails[..], &avatar_urls[..]) {
        let row = connection
            .client
            .query_opt(&statements.insert_one, &[name, email, avatar_url])
            .await?;
        return Ok(vec![row.as_ref().map(User::try_from).transpose()?]);
    }
    let params: [&(dyn ToSql + Sync); 3] = [&names, &emails, &avatar_urls];
    let rows = connection.client.query(&statements.insert_many, &params).await?;
    rows.iter()
        .map(|row| match row.try_get::<_, Option<Uuid>>(0)? {
            None => Ok(None),
            Some(_) => User::try_from(row).map(Some),
        })
        .collect()
}

/// Applies a non-empty patch inside the caller's transaction; `None` when no user has the id.
pub(crate) async fn update_user(
    connection: &LiveConnection,
    id: Uuid,
    patch: &UserPatch,
) -> Result<Option<User>, tokio_postgres::Error> {
    let email = patch.email.as_ref().map(|email| email.as_ref().map(Email::as_str));
    let avatar_url = patch.avatar_url.as_ref().map(|url| url.as_ref().map(AvatarUrl::as_str));
    let row = connection
        .client
        .query_opt(
            &connection.statements.update,
            &[
                &id,
                &patch.name.as_ref().map(|name| name.as_str()),
                &email.is_some(),
                &email.flatten(),
                &avatar_url.is_some(),
                &avatar_url.flatten(),
            ],
        )
        .await?;
    row.as_ref().map(User::try_from).transpose()
}

/// Deletes inside the caller's transaction; `true` when a row was deleted.
pub(crate) async fn delete_user(connection: &LiveConnection, id: Uuid) -> Result<bool, tokio_postgres::Error> {
    let deleted = connection.client.execute(&connection.statements.delete, &[&id]).await?;
    Ok(deleted > 0)
}

pub(crate) async fn list_users(db: &Database, page: PageRequest) -> Result<UserPage, Error> {
    let fetch = i64::from(page.limit) + 1;
    let rows = read_with_retry!(db.reads(), |connection| async {
        let statements = &connection.statements;
        let (statement, params): (_, &[&(dyn ToSql + Sync)]) = match &page.after {
            None => (&statements.list_first, &[&fetch]),
            Some(after) => (&statements.list_after, &[&after.created_at, &after.id, &fetch]),
        };
        connection.client.query(statement, params).await
    })?;
    let mut users = rows.iter().map(User::try_from).collect::<Result<Vec<_>, _>>()?;
    // A next page exists only if the extra row came back, so a page with a cursor is always full.
    let more = users.len() > usize::from(page.limit);
    users.truncate(usize::from(page.limit));
    let next = users.last().filter(|_| more).map(|last| Cursor {
        created_at: last.created_at,
        id: last.id,
    });
    Ok(UserPage { users, next })
}

/// Whether a statement failed because the email is taken: the client's conflict (409), decided
/// here where the write is made.
pub(crate) fn is_email_conflict(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db_error| {
        *db_error.code() == SqlState::UNIQUE_VIOLATION
            && db_error
                .constraint()
                .is_some_and(|constraint| EMAIL_CONSTRAINTS.contains(&constraint))
    })
}

/// The 409 of a write whose email is taken.
pub(crate) fn email_taken() -> Error {
    Error::Conflict("a user with this email already exists".into())
}
