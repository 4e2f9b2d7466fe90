//! Bad input through real gRPC: bytes no generated client would send (strings that are not
//! UTF-8, NUL), SQL metacharacters, Unicode edge cases, extreme page sizes, forged page tokens,
//! unknown methods, oversized messages and malformed ids. Each is refused with the contract's
//! code (or stored verbatim), stores nothing it should not, and the next normal request works.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proto::todo::v1 as pb;
use testkit::better_auth::TestUser;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{
    TestApp, as_user, assert_code, assert_invalid, grpc_frame, on_both_backends, push_bytes_field,
    push_varint_field, reason,
};

const CREATE: &str = "/todo.v1.TodoService/CreateTodo";
const GET: &str = "/todo.v1.TodoService/GetTodo";
const LIST: &str = "/todo.v1.TodoService/ListTodos";
const UPDATE: &str = "/todo.v1.TodoService/UpdateTodo";

/// Byte strings that are not UTF-8: a Latin-1 `é`, a lone continuation byte, an overlong
/// encoding of `/`, a UTF-16 surrogate encoded as UTF-8, a truncated 4-byte sequence, `0xFF`.
const NOT_UTF8: [&[u8]; 6] = [
    b"caf\xe9",
    b"\x80",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"milk \xf0\x9f\x98",
    b"\xff\xfe",
];

/// Asserts that the service still serves `user` normally: a create and a read succeed.
async fn still_serving(app: &TestApp, user: &TestUser) {
    let todo = app
        .create(user, "still serving")
        .await
        .expect("a normal create still works");
    assert_eq!(
        app.get(user, &todo.id).await.expect("a normal get works"),
        todo
    );
    app.delete(user, &todo.id)
        .await
        .expect("a normal delete works");
}

/// The token for the second page of `user`'s list, one todo per page.
async fn first_page_token(app: &TestApp, user: &TestUser) -> String {
    app.list(
        user,
        pb::ListTodosRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .expect("list works")
    .next_page_token
}

on_both_backends! {
    async fn strings_that_are_not_utf8_are_invalid_and_name_their_field(app) {
        let alice = app.user("alice").await;
        let existing = app.create(&alice, "existing").await.expect("create works");
        let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
        for bad in NOT_UTF8 {
            // CreateTodoRequest: user_id 1, title 2, description 3, request_id 4.
            for (number, field) in [(1, "user_id"), (2, "title"), (3, "description"), (4, "request_id")] {
                let mut message = Vec::new();
                if number != 2 {
                    push_bytes_field(&mut message, 2, b"fine title");
                }
                push_bytes_field(&mut message, number, bad);
                cases.push((CREATE, message, field));
            }
            // UpdateTodoRequest: id 2, title 3 (optional), description 4 (optional).
            for (number, field) in [(3, "title"), (4, "description")] {
                let mut message = Vec::new();
                push_bytes_field(&mut message, 2, existing.id.as_bytes());
                push_bytes_field(&mut message, number, bad);
                cases.push((UPDATE, message, field));
            }
            let mut get = Vec::new();
            push_bytes_field(&mut get, 2, bad);
            cases.push((GET, get, "id"));
            // ListTodosRequest: page_token 3.
            let mut list = Vec::new();
            push_bytes_field(&mut list, 3, bad);
            cases.push((LIST, list, "page_token"));
        }
        for (path, message, field) in cases {
            let answer = app.raw_call(path, Some(&alice), &[], grpc_frame(&message)).await;
            let status = answer.status;
            assert_eq!(status.code(), Code::InvalidArgument, "{path} {field}: {}", status.message());
            assert_eq!(reason(&status), "MALFORMED_REQUEST", "{path} {field}");
            assert!(status.message().contains("UTF-8"), "a clear message: {}", status.message());
            let violations = status
                .get_details_bad_request()
                .expect("a BadRequest names the field")
                .field_violations;
            assert_eq!(violations[0].field, field, "{path}");
        }
        assert_eq!(app.list_all(&alice).await, vec![existing.clone()], "nothing stored or changed");
        still_serving(&app, &alice).await;
    }

    async fn a_message_that_is_not_protobuf_is_invalid_and_the_service_keeps_serving(app) {
        let alice = app.user("alice").await;
        let garbage: [&[u8]; 4] = [
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",   // an endless varint key
            b"\x12\x7fshort",                                 // a length beyond the message
            b"\x17",                                          // wire type 7 does not exist
            b"\x10\x05",                                      // title (2) as a varint
        ];
        for message in garbage {
            let answer = app.raw_call(CREATE, Some(&alice), &[], grpc_frame(message)).await;
            assert_eq!(answer.status.code(), Code::InvalidArgument, "{message:?}: {}", answer.status.message());
            assert_eq!(reason(&answer.status), "MALFORMED_REQUEST");
        }
        assert!(app.list_all(&alice).await.is_empty());
        still_serving(&app, &alice).await;
    }

    async fn broken_grpc_framing_is_refused_and_the_service_keeps_serving(app) {
        // Framing is the gRPC protocol itself, not a field's value: tonic's INTERNAL stays, as
        // gRPC's status-code table has it (and as the gateway answers broken grpc-web frames).
        let alice = app.user("alice").await;
        let mut truncated = grpc_frame(b"\x12\x05hello");
        truncated.truncate(truncated.len() - 2);
        let mut bad_flag = grpc_frame(b"\x12\x01x");
        bad_flag[0] = 2;
        let mut compressed = grpc_frame(b"\x12\x01x");
        compressed[0] = 1;
        let gzip: &[(&str, &[u8])] = &[("grpc-encoding", b"gzip")];
        let cases = [
            ("no message", Vec::new(), &[][..], Code::Internal),
            ("a frame cut short", truncated, &[], Code::Internal),
            ("half a frame header", vec![0, 0, 0], &[], Code::Internal),
            ("compression flag 2", bad_flag, &[], Code::Internal),
            ("gzip, which is not enabled", compressed, gzip, Code::Unimplemented),
        ];
        for (what, body, headers, code) in cases {
            let answer = app.raw_call(CREATE, Some(&alice), headers, body).await;
            assert_eq!(answer.status.code(), code, "{what}: {}", answer.status.message());
            still_serving(&app, &alice).await;
        }
        assert!(app.list_all(&alice).await.is_empty(), "nothing was stored");
    }

    async fn nul_bytes_are_refused_as_control_characters_and_store_nothing(app) {
        let alice = app.user("alice").await;
        let todo = app.create(&alice, "milk").await.expect("create works");
        for text in ["\u{0}", "milk\u{0}", "\u{0}milk", "mi\u{0}lk"] {
            assert_invalid(app.create(&alice, text).await, "title");
            assert_invalid(
                app.create_with(&alice, pb::CreateTodoRequest {
                    title: "t".into(),
                    description: text.into(),
                    ..Default::default()
                })
                .await,
                "description",
            );
            assert_invalid(
                app.create_with(&alice, pb::CreateTodoRequest {
                    title: "t".into(),
                    request_id: text.into(),
                    ..Default::default()
                })
                .await,
                "request_id",
            );
            assert_invalid(
                app.update(&alice, pb::UpdateTodoRequest {
                    id: todo.id.clone(),
                    title: Some(text.into()),
                    ..Default::default()
                })
                .await,
                "title",
            );
            assert_invalid(
                app.update(&alice, pb::UpdateTodoRequest {
                    id: todo.id.clone(),
                    description: Some(text.into()),
                    ..Default::default()
                })
                .await,
                "description",
            );
            assert_invalid(app.get(&alice, &format!("{}{text}", todo.id)).await, "id");
            assert_invalid(
                app.list(&alice, pb::ListTodosRequest { page_token: text.into(), ..Default::default() }).await,
                "page_token",
            );
            // A NUL in user_id names nobody: refused before anything is looked up.
            assert_code(
                app.list(&alice, pb::ListTodosRequest { user_id: format!("{}{text}", alice.id), ..Default::default() }).await,
                Code::PermissionDenied,
            );
        }
        assert_eq!(app.list_all(&alice).await, vec![todo], "nothing stored, nothing changed");
        still_serving(&app, &alice).await;
    }

    async fn sql_metacharacters_are_stored_verbatim_and_never_match_as_wildcards(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let bobs = app.create(&bob, "bob's only todo").await.expect("create works");
        let texts = [
            "'; DROP TABLE todos; --",
            "\"; DELETE FROM todos WHERE '1'='1",
            "' OR '1'='1",
            "%",
            "_",
            "%_%",
            "\\",
            "\\%\\_",
            "a\\'b",
            "$1 ? :name @p1",
            "*/ /* -- #",
        ];
        let mut created = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let todo = app
                .create_with(&alice, pb::CreateTodoRequest {
                    title: (*text).to_owned(),
                    description: format!("{text}\n{text}"),
                    request_id: (*text).to_owned(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{text:?} is a valid title: {e:?}"));
            assert_eq!(todo.title, *text);
            assert_eq!(todo.description, format!("{text}\n{text}"));
            assert_eq!(app.get(&alice, &todo.id).await.expect("get works"), todo, "{i}");
            created.push(todo);
        }
        // Each request id only matches itself: `%` and `_` are not patterns.
        for (text, todo) in texts.iter().zip(&created) {
            let again = app
                .create_with(&alice, pb::CreateTodoRequest {
                    title: "retry".into(),
                    request_id: (*text).to_owned(),
                    ..Default::default()
                })
                .await
                .expect("an idempotent retry works");
            assert_eq!(&again, todo, "request id {text:?} returns its own todo");
        }
        let fresh = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "fresh".into(),
                request_id: "x".into(),
                ..Default::default()
            })
            .await
            .expect("an unused request id creates a todo");
        assert!(!created.contains(&fresh), "`_` and `%` did not match `x`");
        created.push(fresh);

        // Updates store metacharacters verbatim too.
        let updated = app
            .update(&alice, pb::UpdateTodoRequest {
                id: created[0].id.clone(),
                title: Some("100% _done_ \\o/".into()),
                ..Default::default()
            })
            .await
            .expect("update works");
        assert_eq!(updated.title, "100% _done_ \\o/");
        created[0] = updated;

        // Metacharacters as a user id name nobody, on every RPC.
        for user_id in ["%", "_", "' OR '1'='1", "\\", "*"] {
            assert_code(
                app.list(&alice, pb::ListTodosRequest { user_id: user_id.into(), ..Default::default() }).await,
                Code::PermissionDenied,
            );
            let mut client = app.client.clone();
            assert_code(
                client.get_todo(as_user(&alice, pb::GetTodoRequest { user_id: user_id.into(), id: bobs.id.clone() })).await,
                Code::PermissionDenied,
            );
            assert_code(
                client.delete_todo(as_user(&alice, pb::DeleteTodoRequest { user_id: user_id.into(), id: bobs.id.clone() })).await,
                Code::PermissionDenied,
            );
        }

        let listed = app.list_all(&alice).await;
        assert_eq!(listed, created, "every todo listed once, verbatim");
        let page = app.list(&alice, pb::ListTodosRequest::default()).await.expect("list works");
        assert_eq!(page.total_size, i64::try_from(created.len()).expect("small"));
        assert_eq!(app.list_all(&bob).await, vec![bobs], "bob's data is untouched");
    }

    async fn emoji_rtl_and_combining_text_round_trips_exactly(app) {
        let alice = app.user("alice").await;
        let titles = [
            "👩‍👩‍👧‍👦 family", // a ZWJ sequence: 7 scalar values, one glyph
            "🇫🇷🇯🇵",
            "שלום עולם",
            "مرحبا بالعالم",
            "abc \u{202E}cba\u{202C} def", // right-to-left override and pop
            "\u{200F}rtl mark",
            "e\u{301} vs \u{e9}",          // NFD and NFC stay distinct
            "Z\u{324}\u{354}\u{367}\u{311}\u{313}a\u{308}\u{356}\u{32d}",
            "zero\u{200B}width\u{2060}joiner\u{FEFF}",
            "𝕳𝖊𝖑𝖑𝖔 𐍈 \u{10FFFF}",
            "日本語のタイトル",
        ];
        let mut created = Vec::new();
        for title in titles {
            let todo = app
                .create_with(&alice, pb::CreateTodoRequest {
                    title: title.to_owned(),
                    description: format!("{title}\r\n\t{title}"),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{title:?} is a valid title: {e:?}"));
            assert_eq!(todo.title.as_bytes(), title.as_bytes(), "stored byte for byte");
            assert_eq!(todo.description, format!("{title}\r\n\t{title}"));
            let read = app.get(&alice, &todo.id).await.expect("get works");
            assert_eq!(read.title.as_bytes(), title.as_bytes(), "read back byte for byte");
            created.push(todo);
        }
        // Unicode whitespace around a title is trimmed, inside it is kept.
        let padded = app
            .create(&alice, "\u{00A0}\u{3000} milk\u{2003}and\u{00A0}honey \u{2029}")
            .await
            .expect("create works");
        assert_eq!(padded.title, "milk\u{2003}and\u{00A0}honey");
        created.push(padded);
        let renamed = app
            .update(&alice, pb::UpdateTodoRequest {
                id: created[0].id.clone(),
                title: Some("שלום 👋 e\u{301}".into()),
                ..Default::default()
            })
            .await
            .expect("update works");
        assert_eq!(renamed.title, "שלום 👋 e\u{301}");
        created[0] = renamed;
        assert_eq!(app.list_all(&alice).await, created);
    }

    async fn negative_and_huge_page_sizes_are_refused_or_capped(app) {
        let alice = app.user("alice").await;
        for i in 0..3 {
            app.create(&alice, &format!("todo {i}")).await.expect("create works");
        }
        for page_size in [i32::MIN, -1, i32::MIN + 1] {
            assert_invalid(
                app.list(&alice, pb::ListTodosRequest { page_size, ..Default::default() }).await,
                "page_size",
            );
            still_serving(&app, &alice).await;
        }
        for page_size in [i32::MAX, 101, 100_000] {
            let page = app
                .list(&alice, pb::ListTodosRequest { page_size, ..Default::default() })
                .await
                .expect("a huge page size is capped, not refused");
            assert_eq!(page.todos.len(), 3);
            assert!(page.next_page_token.is_empty());
        }
        // The same extremes hand-encoded as protobuf varints (ten bytes for a negative int32).
        for page_size in [i64::from(i32::MIN), i64::from(i32::MAX)] {
            let mut message = Vec::new();
            push_varint_field(&mut message, 2, page_size);
            let answer = app.raw_call(LIST, Some(&alice), &[], grpc_frame(&message)).await;
            let expected = if page_size < 0 { Code::InvalidArgument } else { Code::Ok };
            assert_eq!(answer.status.code(), expected, "{page_size}: {}", answer.status.message());
        }
    }

    async fn forged_truncated_and_foreign_page_tokens_are_invalid(app) {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let mut alices = Vec::new();
        for i in 0..3 {
            alices.push(app.create(&alice, &format!("alice {i}")).await.expect("create works"));
        }
        let bobs = app.create(&bob, "bob's").await.expect("create works");
        let bob_second = app.create(&bob, "bob's second").await.expect("create works");
        let alices_token = first_page_token(&app, &alice).await;
        let bobs_token = first_page_token(&app, &bob).await;
        assert!(!alices_token.is_empty() && !bobs_token.is_empty());

        let mut rng = fastrand::Rng::with_seed(6);
        let mut bad_tokens: Vec<String> = Vec::new();
        // Random printable strings and random bytes in base64 (with and without padding).
        for _ in 0..20 {
            let len = rng.usize(1..200);
            bad_tokens.push((0..len).map(|_| char::from(rng.u8(0x21..0x7f))).collect());
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            bad_tokens.push(URL_SAFE_NO_PAD.encode(&bytes));
            bad_tokens.push(base64::engine::general_purpose::STANDARD.encode(&bytes));
        }
        // Valid base64 of garbage and of almost-right JSON.
        for json in [
            "hello",
            "{}",
            "null",
            "[]",
            r#"{"v":1}"#,
            r#"{"v":2,"u":"x","c":null,"t":0,"i":"0190f1a0-0000-7000-8000-000000000000"}"#,
            r#"{"v":1,"u":1,"c":null,"t":0,"i":"x"}"#,
            r#"{"v":1,"u":"x","c":"yes","t":"0","i":"x"}"#,
            r#"{"v":1,"u":"x","c":null,"t":1e400,"i":"x"}"#,
            "\u{0}\u{0}\u{0}",
        ] {
            bad_tokens.push(URL_SAFE_NO_PAD.encode(json));
        }
        // Truncated, extended and case-flipped real tokens.
        for cut in 1..alices_token.len().min(12) {
            bad_tokens.push(alices_token[..alices_token.len() - cut].to_owned());
        }
        bad_tokens.push(format!("{alices_token}="));
        bad_tokens.push(format!("{alices_token}A"));
        bad_tokens.push(format!(" {alices_token}"));
        bad_tokens.push(alices_token.to_ascii_uppercase());
        bad_tokens.push("x".repeat(60_000));

        for token in &bad_tokens {
            let result = app
                .list(&alice, pb::ListTodosRequest { page_size: 1, page_token: token.clone(), ..Default::default() })
                .await;
            assert_invalid(result, "page_token");
        }
        still_serving(&app, &alice).await;

        // Bob's token is his: for alice it is invalid, however it is combined.
        for completed in [None, Some(false), Some(true)] {
            assert_invalid(
                app.list(&alice, pb::ListTodosRequest { page_size: 1, page_token: bobs_token.clone(), completed, ..Default::default() }).await,
                "page_token",
            );
        }
        // A token is bound to its filter.
        for completed in [Some(false), Some(true)] {
            assert_invalid(
                app.list(&alice, pb::ListTodosRequest { page_size: 1, page_token: alices_token.clone(), completed, ..Default::default() }).await,
                "page_token",
            );
        }
        // Tokens are not signed: alice can rewrite hers (or bob's) into a token that decodes for
        // her, with another filter or another position. It can only ever page through her own
        // todos, so this is not a secret to protect.
        let mut wire: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&bobs_token).expect("base64")).expect("JSON");
        assert_eq!(wire["u"], bob.id.as_str(), "the token carries its owner's id");
        wire["u"] = alice.id.as_str().into();
        wire["c"] = false.into();
        let rewritten = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).expect("JSON"));
        assert_invalid(
            app.list(&alice, pb::ListTodosRequest { page_token: rewritten.clone(), ..Default::default() }).await,
            "page_token",
        );
        let own_only = app
            .list(&alice, pb::ListTodosRequest { page_token: rewritten, completed: Some(false), ..Default::default() })
            .await
            .expect("a token rewritten to alice's own id pages alice's list");
        assert!(own_only.todos.iter().all(|t| t.user_id == alice.id), "only alice's todos");
        assert!(!own_only.todos.iter().any(|t| t.id == bobs.id || t.id == bob_second.id));
        assert_eq!(own_only.total_size, 3, "total_size counts alice's todos only");

        assert_eq!(app.list_all(&alice).await, alices);
        assert_eq!(app.list_all(&bob).await, vec![bobs, bob_second]);
    }

    async fn unknown_methods_are_unimplemented_and_need_a_session_on_the_service_path(app) {
        let alice = app.user("alice").await;
        let body = grpc_frame(&[]);
        for path in [
            "/todo.v1.TodoService/DropTodos",
            "/todo.v1.TodoService/listTodos",
            "/todo.v1.TodoService/ListTodos/extra",
        ] {
            let answer = app.raw_call(path, Some(&alice), &[], body.clone()).await;
            assert_eq!(answer.http, http::StatusCode::OK, "{path}");
            assert_eq!(answer.status.code(), Code::Unimplemented, "{path}: {}", answer.status.message());
            // Without a session the session check answers first: the service's surface is not
            // probed for free.
            let answer = app.raw_call(path, None, &[], body.clone()).await;
            assert_eq!(answer.status.code(), Code::Unauthenticated, "{path}");
        }
        // Paths outside any service: the router's answer, session or not.
        for path in ["/todo.v1.NoSuchService/ListTodos", "/todo.v2.TodoService/ListTodos", "/todo.v1.TodoService/", "/", "/x"] {
            for user in [Some(&alice), None] {
                let answer = app.raw_call(path, user, &[], body.clone()).await;
                assert_eq!(answer.status.code(), Code::Unimplemented, "{path}: {}", answer.status.message());
            }
        }
        still_serving(&app, &alice).await;
    }

    async fn oversized_messages_are_resource_exhausted_and_store_nothing(app) {
        let alice = app.user("alice").await;
        let limit = todo_service::startup::MAX_MESSAGE_BYTES;

        // Through the generated client: a description far over the limit.
        let status = assert_code(
            app.create_with(&alice, pb::CreateTodoRequest {
                title: "big".into(),
                description: "x".repeat(100 * 1024),
                ..Default::default()
            })
            .await,
            Code::ResourceExhausted,
        );
        assert_eq!(reason(&status), "MESSAGE_TOO_LARGE");
        assert!(status.message().contains(&limit.to_string()), "{}", status.message());

        // At the limit the message is read (and its 64 KiB description refused by validation);
        // one byte over, it is not read at all.
        for (extra, expected) in [(0, Code::InvalidArgument), (1, Code::ResourceExhausted)] {
            let mut message = Vec::new();
            push_bytes_field(&mut message, 2, b"t");
            let header = 1 + 3; // tag and a three-byte length
            let description = vec![b'd'; limit - message.len() - header + extra];
            push_bytes_field(&mut message, 3, &description);
            assert_eq!(message.len(), limit + extra);
            let answer = app.raw_call(CREATE, Some(&alice), &[], grpc_frame(&message)).await;
            assert_eq!(answer.status.code(), expected, "{} bytes: {}", message.len(), answer.status.message());
        }

        // A length prefix of almost 4 GiB with a few bytes behind it: refused from the prefix.
        let mut frame = vec![0];
        frame.extend_from_slice(&u32::MAX.to_be_bytes());
        frame.extend_from_slice(b"\x12\x01x");
        let answer = app.raw_call(CREATE, Some(&alice), &[], frame).await;
        assert_eq!(answer.status.code(), Code::ResourceExhausted, "{}", answer.status.message());

        // A huge request_id is bounded by the same limit, and by its own below it.
        let status = assert_code(
            app.create_with(&alice, pb::CreateTodoRequest {
                title: "t".into(),
                request_id: "r".repeat(1024 * 1024),
                ..Default::default()
            })
            .await,
            Code::ResourceExhausted,
        );
        assert_eq!(reason(&status), "MESSAGE_TOO_LARGE");
        assert_invalid(
            app.create_with(&alice, pb::CreateTodoRequest {
                title: "t".into(),
                request_id: "r".repeat(60_000),
                ..Default::default()
            })
            .await,
            "request_id",
        );
        let longest = "🔑".repeat(128);
        let kept = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "longest key".into(),
                request_id: longest.clone(),
                ..Default::default()
            })
            .await
            .expect("128 characters is the longest request id");
        let again = app
            .create_with(&alice, pb::CreateTodoRequest {
                title: "longest key again".into(),
                request_id: longest,
                ..Default::default()
            })
            .await
            .expect("a retry works");
        assert_eq!(again, kept);

        assert_eq!(app.list_all(&alice).await, vec![kept], "only the valid todo was stored");
        still_serving(&app, &alice).await;
    }

    async fn malformed_ids_are_invalid_on_get_update_and_delete(app) {
        let alice = app.user("alice").await;
        let todo = app.create(&alice, "milk").await.expect("create works");
        let id = todo.id.clone();
        let malformed = [
            String::new(),
            "not a uuid".into(),
            "not-a-uuid".into(),
            id.to_uppercase(),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
            id.replace('-', ""),
            format!(" {id}"),
            format!("{id}\n"),
            format!("{id}0"),
            id[..35].to_owned(),
            "00000000-0000-0000-0000-00000000000g".into(),
            "０１９０ｆ１ａ０-0000-7000-8000-000000000000".into(),
            "'; DROP TABLE todos; --".into(),
            "%".into(),
            "a".repeat(60_000),
        ];
        for bad in &malformed {
            assert_invalid(app.get(&alice, bad).await, "id");
            assert_invalid(
                app.update(&alice, pb::UpdateTodoRequest {
                    id: bad.clone(),
                    completed: Some(true),
                    ..Default::default()
                })
                .await,
                "id",
            );
            assert_invalid(app.delete(&alice, bad).await, "id");
        }
        // The exact id still works, and nothing above changed the todo.
        assert_eq!(app.get(&alice, &id).await.expect("get works"), todo);
        assert_eq!(app.list_all(&alice).await, vec![todo]);
        still_serving(&app, &alice).await;
    }
}
