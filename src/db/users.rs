//! The `users` table: one function per query, each with its SQL beside it.
//!
//! Every statement is prepared once per connection (`UserStatements::prepare`) and run with bound
//! parameters; no SQL is ever built from input. Rows become `User`s through `TryFrom<&Row>`.
//! Each write is a single statement, so it commits when it returns, before the caller touches
//! the cache.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Row, Statement};
use uuid::Uuid;

use crate::db::Database;
use crate::error::Error;
use crate::users::User;
use crate::users::input::{NewUser, UserPatch};
use crate::users::page::{Cursor, PageRequest};

/// The users statements of one connection.
pub struct UserStatements {
    find: Statement,
    insert: Statement,
    update: Statement,
    delete: Statement,
    list_first: Statement,
    list_after: Statement,
}

/// One page of users, newest first, and where the next one starts.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next: Option<Cursor>,
}

const FIND_USER: &str = "SELECT id, name, email, avatar_url, created_at, updated_at FROM users WHERE id = $1";

const INSERT_USER: &str = "INSERT INTO users (name, email, avatar_url) VALUES ($1, $2, $3) \
     RETURNING id, name, email, avatar_url, created_at, updated_at";

/// Absent fields keep their value: `$3`/`$5` say whether email/avatar_url are being set at all,
/// so that "set to null" and "leave alone" stay apart.
const UPDATE_USER: &str = "UPDATE users SET \
       name = COALESCE($2, name), \
       email = CASE WHEN $3 THEN $4 ELSE email END, \
       avatar_url = CASE WHEN $5 THEN $6 ELSE avatar_url END, \
       updated_at = now() \
     WHERE id = $1 \
     RETURNING id, name, email, avatar_url, created_at, updated_at";

const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

/// Newest first; `(created_at, id)` is unique, so the order is total and pages never overlap.
/// `$1` is one more than the page size, to learn whether another page follows.
const LIST_FIRST: &str = "SELECT id, name, email, avatar_url, created_at, updated_at FROM users \
     ORDER BY created_at DESC, id DESC LIMIT $1";

const LIST_AFTER: &str = "SELECT id, name, email, avatar_url, created_at, updated_at FROM users \
     WHERE (created_at, id) < ($1, $2) \
     ORDER BY created_at DESC, id DESC LIMIT $3";

/// The constraints that make an email unique (the table's own, and the case-insensitive index).
const EMAIL_CONSTRAINTS: [&str; 2] = ["users_email_key", "users_email_lower_key"];

impl UserStatements {
    pub async fn prepare(client: &Client) -> Result<UserStatements, tokio_postgres::Error> {
        Ok(UserStatements {
            find: client.prepare(FIND_USER).await?,
            insert: client.prepare(INSERT_USER).await?,
            update: client.prepare(UPDATE_USER).await?,
            delete: client.prepare(DELETE_USER).await?,
            list_first: client.prepare(LIST_FIRST).await?,
            list_after: client.prepare(LIST_AFTER).await?,
        })
    }
}

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

pub async fn find_user(db: &Database, id: Uuid) -> Result<Option<User>, Error> {
    let row = read_with_retry!(db, |connection| connection
        .client
        .query_opt(&connection.statements.users.find, &[&id]))?;
    Ok(row.as_ref().map(User::try_from).transpose()?)
}

pub async fn insert_user(db: &Database, user: &NewUser) -> Result<User, Error> {
    let connection = db.lease().await?;
    let row = connection
        .client
        .query_one(
            &connection.statements.users.insert,
            &[
                &user.name.as_str(),
                &user.email.as_ref().map(|email| email.as_str()),
                &user.avatar_url.as_ref().map(|url| url.as_str()),
            ],
        )
        .await
        .map_err(email_conflict)?;
    Ok(User::try_from(&row)?)
}

/// Applies a non-empty patch; `None` when no user has the id.
pub async fn update_user(db: &Database, id: Uuid, patch: &UserPatch) -> Result<Option<User>, Error> {
    let connection = db.lease().await?;
    let email = patch
        .email
        .as_ref()
        .map(|email| email.as_ref().map(|email| email.as_str()));
    let avatar_url = patch
        .avatar_url
        .as_ref()
        .map(|url| url.as_ref().map(|url| url.as_str()));
    let row = connection
        .client
        .query_opt(
            &connection.statements.users.update,
            &[
                &id,
                &patch.name.as_ref().map(|name| name.as_str()),
                &email.is_some(),
                &email.flatten(),
                &avatar_url.is_some(),
                &avatar_url.flatten(),
            ],
        )
        .await
        .map_err(email_conflict)?;
    Ok(row.as_ref().map(User::try_from).transpose()?)
}

/// `true` when a row was deleted.
pub async fn delete_user(db: &Database, id: Uuid) -> Result<bool, Error> {
    let connection = db.lease().await?;
    let deleted = connection
        .client
        .execute(&connection.statements.users.delete, &[&id])
        .await?;
    Ok(deleted > 0)
}

pub async fn list_users(db: &Database, page: PageRequest) -> Result<UserPage, Error> {
    let fetch = i64::from(page.limit) + 1;
    let rows = read_with_retry!(db, |connection| async {
        let statements = &connection.statements.users;
        match &page.after {
            None => connection.client.query(&statements.list_first, &[&fetch]).await,
            Some(after) => {
                connection
                    .client
                    .query(&statements.list_after, &[&after.created_at, &after.id, &fetch])
                    .await
            }
        }
    })?;
    let mut users = rows.iter().map(User::try_from).collect::<Result<Vec<_>, _>>()?;
    // A next page exists only if the extra row came back, so a page with a cursor is always full.
    let next = if users.len() > usize::from(page.limit) {
        users.truncate(usize::from(page.limit));
        users.last().map(|last| Cursor {
            created_at: last.created_at,
            id: last.id,
        })
    } else {
        None
    };
    Ok(UserPage { users, next })
}

/// A unique violation on an email constraint is the client's conflict, decided here where the
/// write is made; every other failure keeps its own meaning.
fn email_conflict(error: tokio_postgres::Error) -> Error {
    let on_email = error.as_db_error().is_some_and(|db_error| {
        *db_error.code() == SqlState::UNIQUE_VIOLATION
            && db_error
                .constraint()
                .is_some_and(|constraint| EMAIL_CONSTRAINTS.contains(&constraint))
    });
    if on_email {
        Error::Conflict("a user with this email already exists".into())
    } else {
        Error::from(error)
    }
}
