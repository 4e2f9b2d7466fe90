//! Bad input is INVALID_ARGUMENT with a `BadRequest` violation naming the field, and stores
//! nothing.

use proto::todo::v1 as pb;

use crate::helpers::{assert_invalid, on_both_backends};

on_both_backends! {
    async fn create_todo_rejects_empty_whitespace_long_and_control_character_titles(app) {
        let alice = app.user("alice").await;
        let bad_titles = [
            String::new(),
            "   \t  ".into(),
            "a".repeat(201),
            "😀".repeat(201),
            "milk\u{0}".into(),
            "mi\nlk".into(),
            "bell\u{7}".into(),
            "del\u{7f}".into(),
        ];
        for title in bad_titles {
            assert_invalid(app.create(&alice, &title).await, "title");
        }
        assert!(app.list_all(&alice).await.is_empty(), "nothing was stored");
    }

    async fn create_todo_accepts_titles_up_to_two_hundred_characters(app) {
        let alice = app.user("alice").await;
        let ascii = "a".repeat(200);
        let emoji = "😀".repeat(200);
        let padded = format!("  {}  ", "b".repeat(200));
        assert_eq!(app.create(&alice, &ascii).await.expect("200 chars").title, ascii);
        assert_eq!(app.create(&alice, &emoji).await.expect("200 emoji").title, emoji);
        assert_eq!(
            app.create(&alice, &padded).await.expect("trimmed to 200").title,
            "b".repeat(200)
        );
        let accented = "é".repeat(200);
        assert_eq!(app.create(&alice, &accented).await.expect("200 é").title, accented);
    }

    async fn create_todo_limits_descriptions_to_two_thousand_characters(app) {
        let alice = app.user("alice").await;
        let ok = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "t".into(),
                description: "😀".repeat(2000),
                ..Default::default()
            })
            .await
            .expect("2000 chars");
        assert_eq!(ok.description.chars().count(), 2000);
        for description in ["x".repeat(2001), "nul\u{0}".into()] {
            let result = app
                .create_with(&alice, pb::CreateTodoRequest {
                    title: "t".into(),
                    description,
                    ..Default::default()
                })
                .await;
            assert_invalid(result, "description");
        }
        assert_eq!(app.list_all(&alice).await.len(), 1);
    }

    async fn malformed_ids_are_invalid_on_every_rpc_that_takes_one(app) {
        let alice = app.user("alice").await;
        for id in ["", "not-a-uuid", "1234", "'; DROP TABLE todos; --"] {
            assert_invalid(app.get(&alice, id).await, "id");
            assert_invalid(app.delete(&alice, id).await, "id");
            assert_invalid(
                app.update(&alice, pb::UpdateTodoRequest {
                    id: id.into(),
                    completed: Some(true),
                    ..Default::default()
                })
                .await,
                "id",
            );
        }
    }

    async fn update_todo_needs_at_least_one_field_and_validates_each(app) {
        let alice = app.user("alice").await;
        let todo = app.create(&alice, "milk").await.expect("create works");
        let nothing = app
            .update(&alice, pb::UpdateTodoRequest { id: todo.id.clone(), ..Default::default() })
            .await;
        assert_invalid(nothing, "update");
        let blank = app
            .update(&alice, pb::UpdateTodoRequest {
                id: todo.id.clone(),
                title: Some("   ".into()),
                completed: Some(true),
                ..Default::default()
            })
            .await;
        assert_invalid(blank, "title");
        let long = app
            .update(&alice, pb::UpdateTodoRequest {
                id: todo.id.clone(),
                description: Some("x".repeat(2001)),
                ..Default::default()
            })
            .await;
        assert_invalid(long, "description");
        assert_eq!(app.get(&alice, &todo.id).await.expect("get works"), todo, "unchanged");
    }

    async fn an_overlong_request_id_is_invalid(app) {
        let alice = app.user("alice").await;
        let result = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "milk".into(),
                request_id: "r".repeat(129),
                ..Default::default()
            })
            .await;
        assert_invalid(result, "request_id");
    }
}
