//! Query functions for todos. Each takes the owner's [`UserId`] and filters on it: there is no
//! query that can read or change another user's rows. Each body is written once and runs on
//! both backends through [`with_connection!`].

use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

use super::Connection;
use super::schema::todos;
use crate::domain::{NewTodo, PageToken, Timestamp, Todo, TodoChanges, TodoFilter, TodoId, UserId};
use crate::error::Error;

/// A row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = todos)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct TodoRow {
    id: String,
    user_id: String,
    title: String,
    description: String,
    completed: bool,
    create_time: i64,
    update_time: i64,
}

impl TryFrom<TodoRow> for Todo {
    type Error = Error;

    fn try_from(row: TodoRow) -> Result<Self, Error> {
        let corrupt =
            |e| Error::Unexpected(anyhow::anyhow!("stored todo {} is invalid: {e}", row.id));
        Ok(Self {
            id: TodoId::parse(&row.id, "id").map_err(corrupt)?,
            user_id: UserId::parse(row.user_id.clone()).map_err(corrupt)?,
            title: row.title,
            description: row.description,
            completed: row.completed,
            create_time: Timestamp::from_micros(row.create_time),
            update_time: Timestamp::from_micros(row.update_time),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = todos)]
struct NewTodoRow<'a> {
    id: String,
    user_id: &'a str,
    title: &'a str,
    description: &'a str,
    completed: bool,
    request_id: Option<&'a str>,
    create_time: i64,
    update_time: i64,
}

#[derive(AsChangeset)]
#[diesel(table_name = todos)]
struct TodoChangeset<'a> {
    title: Option<&'a str>,
    description: Option<&'a str>,
    completed: Option<bool>,
}

/// Stores a new todo for `owner`. With a `request_id` that `owner` already used, stores nothing
/// and returns the todo created the first time: the unique index on `(user_id, request_id)`
/// decides, so concurrent retries also end with one row.
pub async fn insert(conn: &mut Connection, owner: &UserId, new: &NewTodo) -> Result<Todo, Error> {
    let now = Timestamp::now().micros();
    let row = NewTodoRow {
        id: TodoId::generate().to_string(),
        user_id: owner.as_str(),
        title: new.title.as_str(),
        description: new.description.as_str(),
        completed: false,
        request_id: new.request_id.as_ref().map(|r| r.as_str()),
        create_time: now,
        update_time: now,
    };
    let inserted: Option<TodoRow> = with_connection!(conn, |c| {
        diesel::insert_into(todos::table)
            .values(&row)
            .on_conflict((todos::user_id, todos::request_id))
            .do_nothing()
            .returning(TodoRow::as_returning())
            .get_result(c)
            .await
            .optional()?
    });
    if let Some(inserted) = inserted {
        return Todo::try_from(inserted);
    }
    // The conflict can only come from the request id; the earlier insert has committed, since
    // the database waited for it before reporting the conflict.
    let request_id = row.request_id.unwrap_or_default();
    let existing: Option<TodoRow> = with_connection!(conn, |c| {
        todos::table
            .filter(todos::user_id.eq(owner.as_str()))
            .filter(todos::request_id.eq(request_id))
            .select(TodoRow::as_select())
            .first(c)
            .await
            .optional()?
    });
    match existing {
        Some(existing) => Todo::try_from(existing),
        None => Err(Error::Unexpected(anyhow::anyhow!(
            "insert conflicted but no todo has the request id"
        ))),
    }
}

/// `owner`'s todo with this id, if there is one.
pub async fn find(
    conn: &mut Connection,
    owner: &UserId,
    id: TodoId,
) -> Result<Option<Todo>, Error> {
    let id = id.to_string();
    let row: Option<TodoRow> = with_connection!(conn, |c| {
        todos::table
            .filter(todos::user_id.eq(owner.as_str()))
            .filter(todos::id.eq(&id))
            .select(TodoRow::as_select())
            .first(c)
            .await
            .optional()?
    });
    row.map(Todo::try_from).transpose()
}

/// The boxed query for [`list`]'s page, built the same way for either backend.
macro_rules! page_query {
    ($owner:expr, $filter:expr, $after:expr, $limit:expr) => {{
        let mut query = todos::table
            .filter(todos::user_id.eq($owner.as_str()))
            .select(TodoRow::as_select())
            .order((todos::create_time.asc(), todos::id.asc()))
            .limit($limit)
            .into_boxed();
        if let Some(completed) = $filter.completed {
            query = query.filter(todos::completed.eq(completed));
        }
        if let Some((time, id)) = $after {
            query = query.filter(
                todos::create_time
                    .gt(*time)
                    .or(todos::create_time.eq(*time).and(todos::id.gt(id))),
            );
        }
        query
    }};
}

/// The boxed query for [`list`]'s count, built the same way for either backend.
macro_rules! count_query {
    ($owner:expr, $filter:expr) => {{
        let mut query = todos::table
            .filter(todos::user_id.eq($owner.as_str()))
            .count()
            .into_boxed();
        if let Some(completed) = $filter.completed {
            query = query.filter(todos::completed.eq(completed));
        }
        query
    }};
}

/// Up to `limit` of `owner`'s todos matching `filter`, oldest first, starting after `after`, and
/// how many of `owner`'s todos match `filter` in all.
///
/// Keyset pagination: the position is a `(create_time, id)` pair, so pages stay cheap and
/// stable however deep the client goes. The count costs a second query only when the page does
/// not already hold every match (a first page shorter than `limit` is the whole list); on
/// PostgreSQL, when it is surely needed (a later page) the two queries are pipelined: both are
/// sent before the first answer is read.
pub async fn list(
    conn: &mut Connection,
    owner: &UserId,
    filter: TodoFilter,
    after: Option<&PageToken>,
    limit: i64,
) -> Result<(Vec<Todo>, i64), Error> {
    let after = after.map(|token| (token.after_time.micros(), token.after_id.to_string()));
    // The first page, short of `limit`: every match is in it.
    let whole_list = |rows: &[TodoRow]| {
        let count = i64::try_from(rows.len()).ok()?;
        (after.is_none() && count < limit).then_some(count)
    };
    let (rows, count): (Vec<TodoRow>, i64) = match conn {
        Connection::Postgres(c) if after.is_some() => {
            let c: &diesel_async::AsyncPgConnection = c;
            tokio::try_join!(
                page_query!(owner, filter, &after, limit).load(&mut &*c),
                count_query!(owner, filter).get_result(&mut &*c),
            )?
        }
        _ => {
            let rows: Vec<TodoRow> = with_connection!(conn, |c| {
                page_query!(owner, filter, &after, limit).load(c).await?
            });
            let count = match whole_list(&rows) {
                Some(count) => count,
                None => with_connection!(conn, |c| {
                    count_query!(owner, filter).get_result(c).await?
                }),
            };
            (rows, count)
        }
    };
    let todos = rows
        .into_iter()
        .map(Todo::try_from)
        .collect::<Result<_, _>>()?;
    Ok((todos, count))
}

/// Applies `changes` to `owner`'s todo and returns it, or `None` if `owner` has no such todo.
/// `update_time` always moves forward, even for two updates within one microsecond.
pub async fn update(
    conn: &mut Connection,
    owner: &UserId,
    id: TodoId,
    changes: &TodoChanges,
) -> Result<Option<Todo>, Error> {
    let id = id.to_string();
    let now = Timestamp::now().micros();
    let changeset = TodoChangeset {
        title: changes.title().map(|t| t.as_str()),
        description: changes.description().map(|d| d.as_str()),
        completed: changes.completed(),
    };
    let row: Option<TodoRow> = with_connection!(conn, |c| {
        diesel::update(
            todos::table
                .filter(todos::user_id.eq(owner.as_str()))
                .filter(todos::id.eq(&id)),
        )
        .set((
            &changeset,
            todos::update_time.eq(
                case_when(todos::update_time.lt(now), now.into_sql::<BigInt>())
                    .otherwise(todos::update_time + 1_i64),
            ),
        ))
        .returning(TodoRow::as_returning())
        .get_result(c)
        .await
        .optional()?
    });
    row.map(Todo::try_from).transpose()
}

/// Deletes `owner`'s todo; `false` if `owner` has no such todo.
pub async fn delete(conn: &mut Connection, owner: &UserId, id: TodoId) -> Result<bool, Error> {
    let id = id.to_string();
    let deleted = with_connection!(conn, |c| {
        diesel::delete(
            todos::table
                .filter(todos::user_id.eq(owner.as_str()))
                .filter(todos::id.eq(&id)),
        )
        .execute(c)
        .await?
    });
    Ok(deleted > 0)
}
