-- Schema and seed rows of the demo database. Loaded by the Postgres primary image (k8s/) and by
-- the local lab (bench/) and the test harness (testkit), so all three serve the same data.
CREATE TABLE IF NOT EXISTS users (
    id    serial PRIMARY KEY,
    name  text NOT NULL,
    email text NOT NULL UNIQUE
);

INSERT INTO users (name, email) VALUES
    ('alice', 'alice@example.com'),
    ('bob', 'bob@example.com'),
    ('carol', 'carol@example.com')
ON CONFLICT (email) DO NOTHING;
