-- Todos, owned by a Better Auth user id. Same columns and types as the PostgreSQL migration:
-- timestamps are microseconds since the Unix epoch, booleans are stored as integers.
CREATE TABLE todos (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    completed   BOOLEAN NOT NULL DEFAULT FALSE,
    request_id  TEXT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    CONSTRAINT todos_user_request_unique UNIQUE (user_id, request_id)
);

CREATE INDEX todos_user_order ON todos (user_id, create_time, id);
