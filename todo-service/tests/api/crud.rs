//! Create, read, update and delete, as one user.

use proto::todo::v1 as pb;
use tonic::Code;

use crate::helpers::{assert_code, nanos, on_both_backends, reason};

on_both_backends! {
    async fn a_created_todo_can_be_read_back(app) {
        let alice = app.user("alice").await;
        let created = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "  milk  ".into(),
                description: "two litres\nsemi-skimmed".into(),
                ..Default::default()
            })
            .await
            .expect("create works");
        assert_eq!(created.title, "milk", "the title is trimmed");
        assert_eq!(created.description, "two litres\nsemi-skimmed");
        assert_eq!(created.user_id, alice.id);
        assert!(!created.completed);
        assert_eq!(uuid::Uuid::parse_str(&created.id).map(|u| u.get_version_num()), Ok(7));
        assert!(created.create_time.is_some());
        assert_eq!(created.create_time, created.update_time);

        let fetched = app.get(&alice, &created.id).await.expect("get works");
        assert_eq!(fetched, created);
    }

    async fn an_explicit_user_id_of_the_caller_is_accepted(app) {
        let alice = app.user("alice").await;
        let created = app
            .create_with(&alice, pb::CreateTodoRequest {
                user_id: alice.id.clone(),
                title: "bread".into(),
                ..Default::default()
            })
            .await
            .expect("create works");
        let listed = app
            .list(&alice, pb::ListTodosRequest { user_id: alice.id.clone(), ..Default::default() })
            .await
            .expect("list works");
        assert_eq!(listed.todos, vec![created]);
    }

    async fn update_changes_only_the_fields_that_are_set(app) {
        let alice = app.user("alice").await;
        let created = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "milk".into(),
                description: "two litres".into(),
                ..Default::default()
            })
            .await
            .expect("create works");

        let completed = app
            .update(&alice, pb::UpdateTodoRequest {
                id: created.id.clone(),
                completed: Some(true),
                ..Default::default()
            })
            .await
            .expect("update works");
        assert!(completed.completed);
        assert_eq!(completed.title, "milk");
        assert_eq!(completed.description, "two litres");
        assert_eq!(completed.create_time, created.create_time);
        assert!(
            nanos(completed.update_time.as_ref()) > nanos(created.update_time.as_ref()),
            "update_time moves forward"
        );

        let renamed = app
            .update(&alice, pb::UpdateTodoRequest {
                id: created.id.clone(),
                title: Some(" oat milk ".into()),
                description: Some(String::new()),
                ..Default::default()
            })
            .await
            .expect("update works");
        assert_eq!(renamed.title, "oat milk");
        assert_eq!(renamed.description, "");
        assert!(renamed.completed, "completed is unchanged");
        assert!(nanos(renamed.update_time.as_ref()) > nanos(completed.update_time.as_ref()));

        assert_eq!(app.get(&alice, &created.id).await.expect("get works"), renamed);
    }

    async fn update_time_changes_on_every_update_even_in_quick_succession(app) {
        let alice = app.user("alice").await;
        let created = app.create(&alice, "milk").await.expect("create works");
        let mut last = nanos(created.update_time.as_ref());
        for i in 0..5 {
            let updated = app
                .update(&alice, pb::UpdateTodoRequest {
                    id: created.id.clone(),
                    completed: Some(i % 2 == 0),
                    ..Default::default()
                })
                .await
                .expect("update works");
            let now = nanos(updated.update_time.as_ref());
            assert!(now > last, "update {i} moved update_time forward");
            last = now;
        }
    }

    async fn a_deleted_todo_is_gone(app) {
        let alice = app.user("alice").await;
        let kept = app.create(&alice, "keep me").await.expect("create works");
        let doomed = app.create(&alice, "delete me").await.expect("create works");

        app.delete(&alice, &doomed.id).await.expect("delete works");

        let status = assert_code(app.get(&alice, &doomed.id).await, Code::NotFound);
        assert_eq!(reason(&status), "TODO_NOT_FOUND");
        assert_code(app.delete(&alice, &doomed.id).await, Code::NotFound);
        assert_code(
            app.update(&alice, pb::UpdateTodoRequest {
                id: doomed.id.clone(),
                completed: Some(true),
                ..Default::default()
            })
            .await,
            Code::NotFound,
        );
        assert_eq!(app.list_all(&alice).await, vec![kept]);
    }

    async fn an_unknown_id_is_not_found(app) {
        let alice = app.user("alice").await;
        let unknown = uuid::Uuid::now_v7().to_string();
        assert_code(app.get(&alice, &unknown).await, Code::NotFound);
        assert_code(app.delete(&alice, &unknown).await, Code::NotFound);
    }
}
