//! ListTodos: creation order, page boundaries, the completed filter, total_size, and page tokens
//! bound to their user and filter.

use proto::todo::v1 as pb;

use crate::helpers::{assert_invalid, on_both_backends};

on_both_backends! {
    async fn total_size_is_exact_around_the_page_size(app) {
        // Below, at and above the page size: the first page alone holds the whole list only
        // when the list is no longer than the page; with the completed filter, some todos are
        // left out of the count.
        let alice = app.user("alice").await;
        let page_size = 3;
        for n in 1..=page_size + 2 {
            let todo = app.create(&alice, &format!("todo {n}")).await.expect("create works");
            if n % 2 == 0 {
                app.update(&alice, pb::UpdateTodoRequest {
                    id: todo.id,
                    completed: Some(true),
                    ..Default::default()
                })
                .await
                .expect("update works");
            }
            let done = i64::from(n) / 2;
            for (completed, expected) in [(None, i64::from(n)), (Some(true), done), (Some(false), i64::from(n) - done)] {
                let page = app
                    .list(&alice, pb::ListTodosRequest { page_size, completed, ..Default::default() })
                    .await
                    .expect("list works");
                assert_eq!(page.total_size, expected, "{n} todos, completed filter {completed:?}");
                assert_eq!(
                    page.todos.len(),
                    usize::try_from(expected.min(i64::from(page_size))).expect("small"),
                );
            }
        }
    }

    async fn pages_follow_creation_order_without_gaps_or_repeats(app) {
        let alice = app.user("alice").await;
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(app.create(&alice, &format!("todo {i}")).await.expect("create works"));
        }

        let first = app
            .list(&alice, pb::ListTodosRequest { page_size: 2, ..Default::default() })
            .await
            .expect("page 1");
        assert_eq!(first.todos, created[0..2].to_vec());
        assert_eq!(first.total_size, 5);
        assert!(!first.next_page_token.is_empty());

        let second = app
            .list(&alice, pb::ListTodosRequest {
                page_size: 2,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("page 2");
        assert_eq!(second.todos, created[2..4].to_vec());
        assert_eq!(second.total_size, 5);

        let third = app
            .list(&alice, pb::ListTodosRequest {
                page_size: 2,
                page_token: second.next_page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("page 3");
        assert_eq!(third.todos, created[4..].to_vec());
        assert!(third.next_page_token.is_empty(), "the last page has no token");
        assert_eq!(third.total_size, 5);
    }

    async fn an_exactly_full_last_page_has_no_next_token(app) {
        let alice = app.user("alice").await;
        for i in 0..4 {
            app.create(&alice, &format!("todo {i}")).await.expect("create works");
        }
        let first = app
            .list(&alice, pb::ListTodosRequest { page_size: 2, ..Default::default() })
            .await
            .expect("page 1");
        let second = app
            .list(&alice, pb::ListTodosRequest {
                page_size: 2,
                page_token: first.next_page_token,
                ..Default::default()
            })
            .await
            .expect("page 2");
        assert_eq!(second.todos.len(), 2);
        assert!(second.next_page_token.is_empty());
    }

    async fn an_empty_list_has_no_todos_and_no_token(app) {
        let alice = app.user("alice").await;
        let page = app.list(&alice, pb::ListTodosRequest::default()).await.expect("list works");
        assert!(page.todos.is_empty());
        assert!(page.next_page_token.is_empty());
        assert_eq!(page.total_size, 0);
    }

    async fn the_completed_filter_selects_todos_and_counts_them(app) {
        let alice = app.user("alice").await;
        let mut done = Vec::new();
        let mut open = Vec::new();
        for i in 0..6 {
            let todo = app.create(&alice, &format!("todo {i}")).await.expect("create works");
            if i % 2 == 0 {
                let todo = app
                    .update(&alice, pb::UpdateTodoRequest {
                        id: todo.id,
                        completed: Some(true),
                        ..Default::default()
                    })
                    .await
                    .expect("update works");
                done.push(todo);
            } else {
                open.push(todo);
            }
        }

        let first = app
            .list(&alice, pb::ListTodosRequest {
                page_size: 2,
                completed: Some(true),
                ..Default::default()
            })
            .await
            .expect("page 1");
        assert_eq!(first.todos, done[0..2].to_vec());
        assert_eq!(first.total_size, 3);
        let second = app
            .list(&alice, pb::ListTodosRequest {
                page_size: 2,
                completed: Some(true),
                page_token: first.next_page_token,
                ..Default::default()
            })
            .await
            .expect("page 2");
        assert_eq!(second.todos, done[2..].to_vec());
        assert!(second.next_page_token.is_empty());

        let not_done = app
            .list(&alice, pb::ListTodosRequest { completed: Some(false), ..Default::default() })
            .await
            .expect("list works");
        assert_eq!(not_done.todos, open);
        assert_eq!(not_done.total_size, 3);

        let all = app.list(&alice, pb::ListTodosRequest::default()).await.expect("list works");
        assert_eq!(all.total_size, 6);
    }

    async fn page_size_zero_means_fifty_and_large_sizes_are_capped_at_one_hundred(app) {
        let alice = app.user("alice").await;
        for i in 0..101 {
            app.create(&alice, &format!("todo {i}")).await.expect("create works");
        }
        let default = app.list(&alice, pb::ListTodosRequest::default()).await.expect("list");
        assert_eq!(default.todos.len(), 50);
        assert_eq!(default.total_size, 101);
        let capped = app
            .list(&alice, pb::ListTodosRequest { page_size: 1000, ..Default::default() })
            .await
            .expect("list");
        assert_eq!(capped.todos.len(), 100);
        assert!(!capped.next_page_token.is_empty());
        assert_eq!(app.list_all(&alice).await.len(), 101);
    }

    async fn a_negative_page_size_is_invalid(app) {
        let alice = app.user("alice").await;
        let result = app
            .list(&alice, pb::ListTodosRequest { page_size: -1, ..Default::default() })
            .await;
        assert_invalid(result, "page_size");
    }

    async fn a_page_token_reused_by_another_user_is_invalid(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        for i in 0..3 {
            app.create(&alice, &format!("alice {i}")).await.expect("create works");
            app.create(&bob, &format!("bob {i}")).await.expect("create works");
        }
        let alices_page = app
            .list(&alice, pb::ListTodosRequest { page_size: 1, ..Default::default() })
            .await
            .expect("list works");
        let result = app
            .list(&bob, pb::ListTodosRequest {
                page_size: 1,
                page_token: alices_page.next_page_token,
                ..Default::default()
            })
            .await;
        assert_invalid(result, "page_token");
    }

    async fn a_page_token_used_with_another_filter_is_invalid(app) {
        let alice = app.user("alice").await;
        for i in 0..3 {
            app.create(&alice, &format!("todo {i}")).await.expect("create works");
        }
        let page = app
            .list(&alice, pb::ListTodosRequest { page_size: 1, ..Default::default() })
            .await
            .expect("list works");
        for completed in [Some(true), Some(false)] {
            let result = app
                .list(&alice, pb::ListTodosRequest {
                    page_size: 1,
                    page_token: page.next_page_token.clone(),
                    completed,
                    ..Default::default()
                })
                .await;
            assert_invalid(result, "page_token");
        }
    }

    async fn a_malformed_page_token_is_invalid(app) {
        let alice = app.user("alice").await;
        for token in ["garbage", "eyJ2IjoxfQ", "%%%", "bm90IGpzb24"] {
            let result = app
                .list(&alice, pb::ListTodosRequest {
                    page_token: token.into(),
                    ..Default::default()
                })
                .await;
            assert_invalid(result, "page_token");
        }
    }

    async fn todos_deleted_between_pages_do_not_break_the_listing(app) {
        let alice = app.user("alice").await;
        let mut created = Vec::new();
        for i in 0..4 {
            created.push(app.create(&alice, &format!("todo {i}")).await.expect("create works"));
        }
        let first = app
            .list(&alice, pb::ListTodosRequest { page_size: 2, ..Default::default() })
            .await
            .expect("page 1");
        // The todo the token points after disappears: keyset pagination still continues there.
        app.delete(&alice, &created[1].id).await.expect("delete works");
        let second = app
            .list(&alice, pb::ListTodosRequest {
                page_size: 2,
                page_token: first.next_page_token,
                ..Default::default()
            })
            .await
            .expect("page 2");
        assert_eq!(second.todos, created[2..].to_vec());
        assert_eq!(second.total_size, 3);
    }
}
