-- Todos, owned by a Better Auth user id. Timestamps are microseconds since the Unix epoch so the
-- same query code serves PostgreSQL and SQLite. Ids use the "C" collation so that keyset
-- pagination orders them byte by byte, as SQLite does.
CREATE TABLE todos (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
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
