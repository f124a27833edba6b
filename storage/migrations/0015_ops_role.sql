-- The role `ops`: the operators' pages (/ops) and nothing else; `staff` keeps /admin and the
-- API's staff operations, and `admin` may do everything (auth.permissions).
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('customer', 'staff', 'ops', 'admin'));
