//! 10 000 randomized cross-user attempts against the real chain (todo-service, auth-service,
//! Better Auth; one real ValidateSession per RPC), SQLite only to keep `cargo test` fast. A
//! seeded RNG picks, per attempt, an RPC, an attacker and a target: another user's todo id,
//! another user's id in `user_id`, random and malformed ids, another user's page token or
//! request id. Every attempt must fail with PERMISSION_DENIED, NOT_FOUND or INVALID_ARGUMENT,
//! or succeed on the attacker's own data only; afterwards every user's todos are byte for byte
//! what they were, apart from the attacker's own creations.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use prost::Message as _;
use proto::todo::v1 as pb;
use proto::todo::v1::todo_service_client::TodoServiceClient;
use testkit::better_auth::TestUser;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::helpers::{Backend, TestApp, as_user, spawn_app};

const ATTEMPTS: usize = 10_000;
const TASKS: usize = 16;
const SEED: u64 = 0x5EC0_7E57;

/// What the attackers know about a victim.
struct Victim {
    user: TestUser,
    todo_ids: Vec<String>,
    request_ids: Vec<String>,
    /// Next-page tokens for each filter the victim listed with.
    page_tokens: Vec<(Option<bool>, String)>,
}

/// One attempt's outcome, by RPC and answer.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<(&'static str, String), usize>,
    /// Successes that touched or revealed another user's data (must stay 0).
    cross_user_successes: Vec<String>,
    /// Answers outside PERMISSION_DENIED / NOT_FOUND / INVALID_ARGUMENT / own-data OK.
    unexpected: Vec<String>,
}

/// Todos each user created for themselves during the run (allowed: own data).
type OwnCreations = Arc<Mutex<HashMap<String, HashSet<String>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_cross_user_attempts_never_succeed() {
    let app = spawn_app(Backend::Sqlite).await;
    let victims = Arc::new(set_up_users(&app).await);
    let before = snapshot(&app, &victims).await;
    let own_creations: OwnCreations = Arc::default();

    let started = Instant::now();
    let per_task = ATTEMPTS / TASKS;
    let tasks = (0..TASKS).map(|task| {
        let client = app.client.clone();
        let victims = victims.clone();
        let own_creations = own_creations.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(SEED + task as u64);
            let mut tally = Tally::default();
            for _ in 0..per_task {
                attempt(&client, &victims, &own_creations, &mut rng, &mut tally).await;
            }
            tally
        })
    });
    let mut total = Tally::default();
    for tally in join_all(tasks).await {
        let tally = tally.expect("an attack task panicked");
        for (key, n) in tally.outcomes {
            *total.outcomes.entry(key).or_default() += n;
        }
        total
            .cross_user_successes
            .extend(tally.cross_user_successes);
        total.unexpected.extend(tally.unexpected);
    }
    let elapsed = started.elapsed();

    let attempts: usize = total.outcomes.values().sum();
    println!(
        "cross-user attempts: {attempts} in {elapsed:.1?} ({TASKS} concurrent tasks, seed {SEED:#x})"
    );
    for ((rpc, outcome), n) in &total.outcomes {
        println!("  {rpc:<10} {outcome:<40} {n:>5}");
    }
    println!("cross-user successes: {}", total.cross_user_successes.len());
    assert_eq!(attempts, ATTEMPTS);
    assert!(
        total.cross_user_successes.is_empty(),
        "{:#?}",
        total.cross_user_successes
    );
    assert!(
        total.unexpected.is_empty(),
        "unexpected answers: {:#?}",
        total.unexpected
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "10 000 attempts took {elapsed:?}"
    );

    // Every user's data is what it was, apart from the todos they created for themselves.
    let own_creations = own_creations.lock().expect("lock").clone();
    let after = snapshot(&app, &victims).await;
    for (user_id, todos) in after {
        let created = own_creations.get(&user_id).cloned().unwrap_or_default();
        let (new, old): (Vec<_>, Vec<_>) =
            todos.into_iter().partition(|(id, _)| created.contains(id));
        assert_eq!(old, before[&user_id], "{user_id}'s todos changed");
        assert_eq!(
            new.len(),
            created.len(),
            "{user_id}'s own creations are all theirs"
        );
    }
    let owned: usize = own_creations.values().map(HashSet::len).sum();
    println!("own-data creations (allowed): {owned}");
}

/// Three users with four todos each (one completed), distinct request ids and page tokens.
async fn set_up_users(app: &TestApp) -> Vec<Victim> {
    let mut victims = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let user = app.user(name).await;
        let mut todo_ids = Vec::new();
        let mut request_ids = Vec::new();
        for i in 0..4 {
            let request_id = format!("{name}-request-{i}");
            let todo = app
                .create_with(
                    &user,
                    pb::CreateTodoRequest {
                        title: format!("{name}'s todo {i}"),
                        description: format!("{name}'s secret {i}"),
                        request_id: request_id.clone(),
                        ..Default::default()
                    },
                )
                .await
                .expect("create works");
            todo_ids.push(todo.id);
            request_ids.push(request_id);
        }
        app.update(
            &user,
            pb::UpdateTodoRequest {
                id: todo_ids[0].clone(),
                completed: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("update works");
        let mut page_tokens = Vec::new();
        for completed in [None, Some(false)] {
            let page = app
                .list(
                    &user,
                    pb::ListTodosRequest {
                        page_size: 1,
                        completed,
                        ..Default::default()
                    },
                )
                .await
                .expect("list works");
            assert!(!page.next_page_token.is_empty());
            page_tokens.push((completed, page.next_page_token));
        }
        victims.push(Victim {
            user,
            todo_ids,
            request_ids,
            page_tokens,
        });
    }
    victims
}

/// Each user's todos as (id, encoded protobuf), in listing order.
async fn snapshot(app: &TestApp, users: &[Victim]) -> HashMap<String, Vec<(String, Vec<u8>)>> {
    let mut snapshot = HashMap::new();
    for victim in users {
        let todos = app.list_all(&victim.user).await;
        let encoded = todos
            .into_iter()
            .map(|t| (t.id.clone(), t.encode_to_vec()))
            .collect();
        snapshot.insert(victim.user.id.clone(), encoded);
    }
    snapshot
}

/// A string that is not any todo's id: a fresh UUID, or something that is not one at all.
fn random_id(rng: &mut fastrand::Rng) -> String {
    match rng.u8(0..4) {
        0 => uuid::Uuid::from_u128(rng.u128(..)).hyphenated().to_string(),
        1 => uuid::Uuid::now_v7().to_string(),
        2 => (0..rng.usize(0..40)).map(|_| rng.alphanumeric()).collect(),
        _ => uuid::Uuid::from_u128(rng.u128(..)).simple().to_string(),
    }
}

/// A target: a todo id of the victim (exact, uppercase) or a random one.
fn target_id(rng: &mut fastrand::Rng, victim: &Victim) -> String {
    let id = victim.todo_ids[rng.usize(..victim.todo_ids.len())].clone();
    match rng.u8(0..6) {
        0..=3 => id,
        4 => id.to_uppercase(),
        _ => random_id(rng),
    }
}

/// `user_id` for the request: empty (the caller), the victim's id, or a random other id.
fn target_user_id(rng: &mut fastrand::Rng, victim: &Victim) -> (String, bool) {
    match rng.u8(0..4) {
        0 | 1 => (String::new(), false),
        2 => (victim.user.id.clone(), true),
        _ => (format!("{}{}", victim.user.id, rng.alphanumeric()), true),
    }
}

async fn attempt(
    client: &TodoServiceClient<Channel>,
    victims: &[Victim],
    own_creations: &OwnCreations,
    rng: &mut fastrand::Rng,
    tally: &mut Tally,
) {
    let attacker_index = rng.usize(..victims.len());
    let attacker = &victims[attacker_index];
    let victim = loop {
        let i = rng.usize(..victims.len());
        if i != attacker_index {
            break &victims[i];
        }
    };
    let others: HashSet<&str> = victims
        .iter()
        .filter(|v| v.user.id != attacker.user.id)
        .flat_map(|v| v.todo_ids.iter().map(String::as_str))
        .collect();
    let mut client = client.clone();
    let (user_id, names_someone_else) = target_user_id(rng, victim);
    let user = &attacker.user;

    let (rpc, result): (&'static str, Result<Success, Status>) = match rng.u8(0..5) {
        0 => {
            let id = target_id(rng, victim);
            let request = pb::GetTodoRequest { user_id, id };
            let result = client.get_todo(as_user(user, request)).await;
            ("GetTodo", result.map(|r| Success::Todo(r.into_inner())))
        }
        1 => {
            let id = if rng.bool() && names_someone_else {
                // The attacker's own todo, but naming the victim: still refused.
                attacker.todo_ids[rng.usize(..attacker.todo_ids.len())].clone()
            } else {
                target_id(rng, victim)
            };
            let request = pb::UpdateTodoRequest {
                user_id,
                id,
                title: rng.bool().then(|| "pwned".to_owned()),
                description: rng.bool().then(|| "pwned".to_owned()),
                completed: Some(rng.bool()),
            };
            let result = client.update_todo(as_user(user, request)).await;
            ("UpdateTodo", result.map(|r| Success::Todo(r.into_inner())))
        }
        2 => {
            let id = target_id(rng, victim);
            let request = pb::DeleteTodoRequest { user_id, id };
            let result = client.delete_todo(as_user(user, request)).await;
            ("DeleteTodo", result.map(|_| Success::Deleted))
        }
        3 => {
            let (completed, token) =
                victim.page_tokens[rng.usize(..victim.page_tokens.len())].clone();
            let page_token = match rng.u8(0..4) {
                0 | 1 => token,
                // The victim's token rewritten to name the attacker: it decodes for the
                // attacker and can only page through the attacker's own todos.
                2 => rewrite_owner(&token, &attacker.user.id),
                _ => String::new(),
            };
            let request = pb::ListTodosRequest {
                user_id,
                page_size: rng.i32(-2..120),
                page_token,
                completed,
            };
            let result = client.list_todos(as_user(user, request)).await;
            ("ListTodos", result.map(|r| Success::List(r.into_inner())))
        }
        _ => {
            let request = pb::CreateTodoRequest {
                user_id,
                title: "planted".into(),
                description: String::new(),
                // The victim's idempotency key: must never hand back the victim's todo.
                request_id: victim.request_ids[rng.usize(..victim.request_ids.len())].clone(),
            };
            let result = client.create_todo(as_user(user, request)).await;
            ("CreateTodo", result.map(|r| Success::Todo(r.into_inner())))
        }
    };

    let outcome = match &result {
        Ok(_) => "OK (own data)".to_owned(),
        Err(status) => format!("{:?}", status.code()),
    };
    *tally.outcomes.entry((rpc, outcome)).or_default() += 1;
    match result {
        Err(status) => {
            if !matches!(
                status.code(),
                Code::PermissionDenied | Code::NotFound | Code::InvalidArgument
            ) {
                tally
                    .unexpected
                    .push(format!("{rpc}: {:?} {}", status.code(), status.message()));
            }
        }
        Ok(success) => {
            let own = |id: &str| {
                own_creations
                    .lock()
                    .expect("lock")
                    .entry(user.id.clone())
                    .or_default()
                    .insert(id.to_owned());
            };
            let crossed = match (&success, rpc) {
                // Get, Update and Delete only ever target someone else's (or no) todo, or name
                // someone else: any success crossed the line.
                (_, "GetTodo" | "UpdateTodo" | "DeleteTodo") => true,
                (Success::List(page), _) => {
                    names_someone_else
                        || page
                            .todos
                            .iter()
                            .any(|t| t.user_id != user.id || others.contains(t.id.as_str()))
                }
                (Success::Todo(todo), "CreateTodo") => {
                    let crossed = names_someone_else
                        || todo.user_id != user.id
                        || others.contains(todo.id.as_str())
                        || todo.title != "planted";
                    if !crossed {
                        own(&todo.id);
                    }
                    crossed
                }
                _ => true,
            };
            if crossed {
                tally.cross_user_successes.push(format!(
                    "{rpc} by {} against {}: {success:?}",
                    user.id, victim.user.id
                ));
            }
        }
    }
}

#[derive(Debug)]
enum Success {
    Todo(pb::Todo),
    List(pb::ListTodosResponse),
    Deleted,
}

fn rewrite_owner(token: &str, owner: &str) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(token).expect("a token is base64url");
    let mut wire: serde_json::Value = serde_json::from_slice(&bytes).expect("a token is JSON");
    wire["u"] = owner.into();
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).expect("JSON"))
}
