//! CreateTodo with a `request_id`: retries, even concurrent ones, create one todo.

use proto::todo::v1 as pb;

use crate::helpers::on_both_backends;

on_both_backends! {
    async fn a_retry_with_the_same_request_id_returns_the_same_todo(app) {
        let alice = app.user("alice").await;
        let request = pb::CreateTodoRequest {
            title: "milk".into(),
            request_id: "retry-1".into(),
            ..Default::default()
        };
        let first = app.create_with(&alice, request.clone()).await.expect("create works");
        let again = app.create_with(&alice, request).await.expect("retry works");
        assert_eq!(first, again);
        assert_eq!(app.list_all(&alice).await, vec![first]);
    }

    async fn concurrent_retries_create_exactly_one_todo(app) {
        let alice = app.user("alice").await;
        let request = pb::CreateTodoRequest {
            title: "milk".into(),
            request_id: "concurrent-1".into(),
            ..Default::default()
        };
        let results = futures::future::join_all(
            (0..16).map(|_| app.create_with(&alice, request.clone())),
        )
        .await;
        let todos: Vec<pb::Todo> = results
            .into_iter()
            .map(|r| r.expect("every retry succeeds"))
            .collect();
        assert!(todos.iter().all(|t| t == &todos[0]), "all retries get the same todo");
        let listed = app.list(&alice, pb::ListTodosRequest::default()).await.expect("list");
        assert_eq!(listed.total_size, 1);
        assert_eq!(listed.todos, vec![todos[0].clone()]);
    }

    async fn different_request_ids_and_no_request_id_create_separate_todos(app) {
        let alice = app.user("alice").await;
        for request_id in ["a", "b", "", ""] {
            app.create_with(&alice, pb::CreateTodoRequest {
                title: "milk".into(),
                request_id: request_id.into(),
                ..Default::default()
            })
            .await
            .expect("create works");
        }
        assert_eq!(app.list_all(&alice).await.len(), 4);
    }

    async fn request_ids_are_scoped_to_their_user(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let request = pb::CreateTodoRequest {
            title: "milk".into(),
            request_id: "shared-key".into(),
            ..Default::default()
        };
        let alices = app.create_with(&alice, request.clone()).await.expect("create works");
        let bobs = app.create_with(&bob, request).await.expect("create works");
        assert_ne!(alices.id, bobs.id);
        assert_eq!(bobs.user_id, bob.id);
        assert_eq!(app.list_all(&alice).await, vec![alices]);
        assert_eq!(app.list_all(&bob).await, vec![bobs]);
    }
}
