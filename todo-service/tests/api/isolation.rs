//! One user can never see or change another user's todos: by id it is NOT_FOUND (existence is
//! not revealed), by `user_id` it is PERMISSION_DENIED (checked before anything is looked up).

use proto::todo::v1 as pb;
use tonic::Code;

use crate::helpers::{as_user, assert_code, on_both_backends, reason};

on_both_backends! {
    async fn another_users_todos_are_not_found_by_id_and_stay_unchanged(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let todo = app.create(&alice, "alice's secret").await.expect("create works");
        let before = app.list_all(&alice).await;

        let status = assert_code(app.get(&bob, &todo.id).await, Code::NotFound);
        assert_eq!(reason(&status), "TODO_NOT_FOUND");
        assert!(!status.message().contains("secret"));
        assert_code(
            app.update(&bob, pb::UpdateTodoRequest {
                id: todo.id.clone(),
                title: Some("pwned".into()),
                completed: Some(true),
                ..Default::default()
            })
            .await,
            Code::NotFound,
        );
        assert_code(app.delete(&bob, &todo.id).await, Code::NotFound);

        // The same answers as for an id that does not exist at all.
        let unknown = uuid::Uuid::now_v7().to_string();
        assert_code(app.get(&bob, &unknown).await, Code::NotFound);

        assert_eq!(app.list_all(&alice).await, before, "alice's data is unchanged");
        let bobs = app.list(&bob, pb::ListTodosRequest::default()).await.expect("list works");
        assert!(bobs.todos.is_empty());
        assert_eq!(bobs.total_size, 0);
    }

    async fn naming_another_user_id_is_permission_denied_on_every_rpc(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let todo = app.create(&alice, "alice's todo").await.expect("create works");
        let before = app.list_all(&alice).await;
        let mut client = app.client.clone();

        // Both an existing todo id and a made-up one: the answer must not depend on existence.
        for id in [todo.id.clone(), uuid::Uuid::now_v7().to_string()] {
            let status = assert_code(
                client.get_todo(as_user(&bob, pb::GetTodoRequest { user_id: alice.id.clone(), id: id.clone() })).await,
                Code::PermissionDenied,
            );
            assert_eq!(reason(&status), "USER_MISMATCH");
            assert_code(
                client.update_todo(as_user(&bob, pb::UpdateTodoRequest {
                    user_id: alice.id.clone(),
                    id: id.clone(),
                    completed: Some(true),
                    ..Default::default()
                })).await,
                Code::PermissionDenied,
            );
            assert_code(
                client.delete_todo(as_user(&bob, pb::DeleteTodoRequest { user_id: alice.id.clone(), id })).await,
                Code::PermissionDenied,
            );
        }
        assert_code(
            client.list_todos(as_user(&bob, pb::ListTodosRequest { user_id: alice.id.clone(), ..Default::default() })).await,
            Code::PermissionDenied,
        );
        assert_code(
            client.create_todo(as_user(&bob, pb::CreateTodoRequest {
                user_id: alice.id.clone(),
                title: "planted".into(),
                ..Default::default()
            })).await,
            Code::PermissionDenied,
        );
        // Even a user id that does not exist.
        assert_code(
            client.list_todos(as_user(&bob, pb::ListTodosRequest { user_id: "nobody".into(), ..Default::default() })).await,
            Code::PermissionDenied,
        );

        assert_eq!(app.list_all(&alice).await, before, "alice's data is unchanged");
        assert!(app.list_all(&bob).await.is_empty(), "nothing was created for bob either");
    }

    async fn each_user_lists_only_their_own_todos(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let a1 = app.create(&alice, "a1").await.expect("create works");
        let b1 = app.create(&bob, "b1").await.expect("create works");
        let a2 = app.create(&alice, "a2").await.expect("create works");
        assert_eq!(app.list_all(&alice).await, vec![a1, a2]);
        assert_eq!(app.list_all(&bob).await, vec![b1]);
    }
}
