-- Accounts: users with roles, sessions (refresh-token families), single-use refresh tokens,
-- one-time tokens for password reset and email verification, and addresses.
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE users (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email              citext NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    password_hash      text NOT NULL,
    role               text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'staff', 'admin')),
    email_verified_at  timestamptz,
    is_active          boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A session is one refresh-token family: one login on one device.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,          -- absolute lifetime: no refresh extends it
    revoked_at   timestamptz,
    revoke_reason text,
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens are stored as SHA-256 digests; the token itself is only ever in the client.
CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE one_time_tokens (
    token_hash   bytea PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose      text NOT NULL CHECK (purpose IN ('password_reset', 'verify_email')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose);

CREATE TABLE addresses (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    full_name     text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 100),
    line1         text NOT NULL CHECK (length(line1) BETWEEN 1 AND 200),
    line2         text NOT NULL DEFAULT '' CHECK (length(line2) <= 200),
    city          text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    postal_code   text NOT NULL CHECK (length(postal_code) BETWEEN 1 AND 20),
    country       char(2) NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    phone         text NOT NULL DEFAULT '' CHECK (length(phone) <= 30),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addresses_user ON addresses (user_id, id);
