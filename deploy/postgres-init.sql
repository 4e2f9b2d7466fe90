-- Runs once, when the compose PostgreSQL volume is created: one database per owner of tables.
CREATE DATABASE better_auth;
CREATE DATABASE todos;
