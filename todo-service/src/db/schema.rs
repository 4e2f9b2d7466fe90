//! The diesel schema, shared by both backends (see `migrations/postgres` and `migrations/sqlite`).

diesel::table! {
    todos (id) {
        id -> Text,
        user_id -> Text,
        title -> Text,
        description -> Text,
        completed -> Bool,
        request_id -> Nullable<Text>,
        create_time -> BigInt,
        update_time -> BigInt,
    }
}
