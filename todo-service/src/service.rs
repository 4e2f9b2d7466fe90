//! The `todo.v1.TodoService` handlers. Proto types stop here: each handler turns the request
//! into domain types, calls `db::todos`, and turns the result back. Each RPC logs one line with
//! the user id, method, status code and latency.

use std::time::{Duration, Instant};

use proto::todo::v1 as pb;
use proto::todo::v1::todo_service_server::TodoService;
use tonic::{Request, Response, Status};

use crate::db::{self, Pool};
use crate::domain::{
    AuthenticatedUser, NewTodo, PageSize, PageToken, RequestId, Timestamp, Todo, TodoChanges,
    TodoDescription, TodoFilter, TodoId, TodoTitle, UserId,
};
use crate::error::Error;
use crate::session::RpcStarted;

/// The handlers' shared state: the database pool.
#[derive(Clone)]
pub struct TodoApi {
    pool: Pool,
    database_timeout: Duration,
}

impl TodoApi {
    /// Handlers that check connections out of `pool`, waiting at most `database_timeout`.
    pub fn new(pool: Pool, database_timeout: Duration) -> Self {
        Self {
            pool,
            database_timeout,
        }
    }

    async fn connection(&self) -> Result<db::Connection, Error> {
        self.pool.get(self.database_timeout).await
    }

    async fn list(
        &self,
        user: &UserId,
        request: pb::ListTodosRequest,
    ) -> Result<pb::ListTodosResponse, Error> {
        check_user(user, &request.user_id)?;
        let page_size = PageSize::parse(request.page_size)?;
        let filter = TodoFilter {
            completed: request.completed,
        };
        let token = PageToken::parse(&request.page_token, user, filter)?;
        let mut conn = self.connection().await?;
        // One extra row tells whether another page follows.
        let limit = i64::from(page_size.get()) + 1;
        let (mut todos, total_size) =
            db::todos::list(&mut conn, user, filter, token.as_ref(), limit).await?;
        let next_page_token = if todos.len() > usize::from(page_size.get()) {
            todos.truncate(usize::from(page_size.get()));
            todos
                .last()
                .map(|last| {
                    PageToken::new(user.clone(), filter, last.create_time, last.id).encode()
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListTodosResponse {
            todos: todos.into_iter().map(to_proto).collect(),
            next_page_token,
            total_size,
        })
    }

    async fn get(&self, user: &UserId, request: pb::GetTodoRequest) -> Result<pb::Todo, Error> {
        check_user(user, &request.user_id)?;
        let id = TodoId::parse(&request.id, "id")?;
        let mut conn = self.connection().await?;
        let todo = db::todos::find(&mut conn, user, id)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(to_proto(todo))
    }

    async fn create(
        &self,
        user: &UserId,
        request: pb::CreateTodoRequest,
    ) -> Result<pb::Todo, Error> {
        check_user(user, &request.user_id)?;
        let new = NewTodo {
            title: TodoTitle::parse(&request.title)?,
            description: TodoDescription::parse(&request.description)?,
            request_id: RequestId::parse(&request.request_id)?,
        };
        let mut conn = self.connection().await?;
        let todo = db::todos::insert(&mut conn, user, &new).await?;
        Ok(to_proto(todo))
    }

    async fn update(
        &self,
        user: &UserId,
        request: pb::UpdateTodoRequest,
    ) -> Result<pb::Todo, Error> {
        check_user(user, &request.user_id)?;
        let id = TodoId::parse(&request.id, "id")?;
        let changes = TodoChanges::new(
            request.title.as_deref().map(TodoTitle::parse).transpose()?,
            request
                .description
                .as_deref()
                .map(TodoDescription::parse)
                .transpose()?,
            request.completed,
        )?;
        let mut conn = self.connection().await?;
        let todo = db::todos::update(&mut conn, user, id, &changes)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(to_proto(todo))
    }

    async fn delete(
        &self,
        user: &UserId,
        request: pb::DeleteTodoRequest,
    ) -> Result<pb::DeleteTodoResponse, Error> {
        check_user(user, &request.user_id)?;
        let id = TodoId::parse(&request.id, "id")?;
        let mut conn = self.connection().await?;
        if db::todos::delete(&mut conn, user, id).await? {
            Ok(pb::DeleteTodoResponse {})
        } else {
            Err(Error::NotFound)
        }
    }
}

/// An empty `user_id` means the caller. Checked before anything is looked up, so a request for
/// another user's data is refused the same way whether or not that data exists.
fn check_user(caller: &UserId, requested: &str) -> Result<(), Error> {
    if requested.is_empty() || requested == caller.as_str() {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
}

fn to_proto(todo: Todo) -> pb::Todo {
    pb::Todo {
        id: todo.id.to_string(),
        user_id: todo.user_id.as_str().to_owned(),
        title: todo.title,
        description: todo.description,
        completed: todo.completed,
        create_time: Some(timestamp(todo.create_time)),
        update_time: Some(timestamp(todo.update_time)),
    }
}

fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = time.seconds_and_nanos();
    prost_types::Timestamp { seconds, nanos }
}

/// Splits a request into the authenticated caller, the RPC start time and the message. A
/// request without a caller cannot pass the session layer; if one does (a wiring bug), refuse.
fn caller<T>(request: Request<T>) -> Result<(AuthenticatedUser, Instant, T), Status> {
    let started = request
        .extensions()
        .get::<RpcStarted>()
        .map_or_else(Instant::now, |s| s.0);
    let user = request
        .extensions()
        .get::<AuthenticatedUser>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no session"))?;
    Ok((user, started, request.into_inner()))
}

/// Logs the RPC's one line and converts the result for tonic.
fn finish<T>(
    method: &'static str,
    user: &AuthenticatedUser,
    started: Instant,
    result: Result<T, Error>,
) -> Result<Response<T>, Status> {
    let result = result.map(Response::new).map_err(Status::from);
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    tracing::info!(
        user_id = %user.id,
        method,
        status = ?code,
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "rpc"
    );
    result
}

#[tonic::async_trait]
impl TodoService for TodoApi {
    async fn list_todos(
        &self,
        request: Request<pb::ListTodosRequest>,
    ) -> Result<Response<pb::ListTodosResponse>, Status> {
        let (user, started, message) = caller(request)?;
        let result = self.list(&user.id, message).await;
        finish("ListTodos", &user, started, result)
    }

    async fn get_todo(
        &self,
        request: Request<pb::GetTodoRequest>,
    ) -> Result<Response<pb::Todo>, Status> {
        let (user, started, message) = caller(request)?;
        let result = self.get(&user.id, message).await;
        finish("GetTodo", &user, started, result)
    }

    async fn create_todo(
        &self,
        request: Request<pb::CreateTodoRequest>,
    ) -> Result<Response<pb::Todo>, Status> {
        let (user, started, message) = caller(request)?;
        let result = self.create(&user.id, message).await;
        finish("CreateTodo", &user, started, result)
    }

    async fn update_todo(
        &self,
        request: Request<pb::UpdateTodoRequest>,
    ) -> Result<Response<pb::Todo>, Status> {
        let (user, started, message) = caller(request)?;
        let result = self.update(&user.id, message).await;
        finish("UpdateTodo", &user, started, result)
    }

    async fn delete_todo(
        &self,
        request: Request<pb::DeleteTodoRequest>,
    ) -> Result<Response<pb::DeleteTodoResponse>, Status> {
        let (user, started, message) = caller(request)?;
        let result = self.delete(&user.id, message).await;
        finish("DeleteTodo", &user, started, result)
    }
}
