-- The Forus tables a 2FA reset touches, for the forus-db executor tests.
--
-- Mirrors the columns of the public forus-backend migrations (Laravel, MySQL 8) as summarised
-- in docs/executor-forus-db.md: utf8mb4 with a case-insensitive collation, nullable Laravel
-- timestamps, soft deletes through `deleted_at`, no unique index on identity_emails.email, and
-- the ON DELETE RESTRICT foreign keys that forbid hard-deleting identity_2fa rows. Columns the
-- executor never touches are kept where they matter for realism (secret, secret_url, code,
-- access_token) so the tests can prove they stay untouched.
-- Statements are separated by ";" at the end of a line (tests/harness/mariadb.py splits on it).

CREATE TABLE identities (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    address VARCHAR(200) NOT NULL,
    created_at TIMESTAMP NULL DEFAULT NULL,
    updated_at TIMESTAMP NULL DEFAULT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY identities_address_unique (address)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE identity_emails (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT,
    identity_address VARCHAR(200) NOT NULL,
    email VARCHAR(191) NOT NULL,
    verified TINYINT(1) NOT NULL DEFAULT 0,
    `primary` TINYINT(1) NOT NULL DEFAULT 0,
    initial TINYINT(1) NOT NULL DEFAULT 0,
    verification_token VARCHAR(200) NULL DEFAULT NULL,
    created_at TIMESTAMP NULL DEFAULT NULL,
    updated_at TIMESTAMP NULL DEFAULT NULL,
    deleted_at TIMESTAMP NULL DEFAULT NULL,
    PRIMARY KEY (id),
    KEY identity_emails_email_index (email),
    KEY identity_emails_identity_address_foreign (identity_address),
    CONSTRAINT identity_emails_identity_address_foreign FOREIGN KEY (identity_address)
        REFERENCES identities (address) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE identity_2fa (
    uuid CHAR(36) NOT NULL,
    identity_address VARCHAR(200) NOT NULL,
    state ENUM('pending', 'active', 'deactivated') NOT NULL DEFAULT 'pending',
    auth_2fa_provider_id BIGINT UNSIGNED NULL DEFAULT NULL,
    phone VARCHAR(100) NULL DEFAULT NULL,
    secret VARCHAR(100) NULL DEFAULT NULL,
    secret_url VARCHAR(800) NULL DEFAULT NULL,
    code VARCHAR(20) NOT NULL,
    deactivation_code VARCHAR(20) NOT NULL,
    deleted_at TIMESTAMP NULL DEFAULT NULL,
    created_at TIMESTAMP NULL DEFAULT NULL,
    updated_at TIMESTAMP NULL DEFAULT NULL,
    PRIMARY KEY (uuid),
    KEY identity_2fa_identity_address_foreign (identity_address),
    CONSTRAINT identity_2fa_identity_address_foreign FOREIGN KEY (identity_address)
        REFERENCES identities (address) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- forus-backend adds `state` as string(20) default 'active'; the values are 'active'/'deactivated'.
CREATE TABLE identity_2fa_codes (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    code VARCHAR(10) NOT NULL,
    identity_2fa_uuid CHAR(36) NOT NULL,
    state VARCHAR(20) NOT NULL DEFAULT 'active',
    expire_at TIMESTAMP NULL DEFAULT NULL,
    deleted_at TIMESTAMP NULL DEFAULT NULL,
    created_at TIMESTAMP NULL DEFAULT NULL,
    updated_at TIMESTAMP NULL DEFAULT NULL,
    PRIMARY KEY (id),
    KEY identity_2fa_codes_identity_2fa_uuid_index (identity_2fa_uuid),
    CONSTRAINT identity_2fa_codes_identity_2fa_uuid_foreign FOREIGN KEY (identity_2fa_uuid)
        REFERENCES identity_2fa (uuid) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE identity_proxies (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT,
    type VARCHAR(20) NULL DEFAULT NULL,
    identity_address VARCHAR(200) NULL DEFAULT NULL,
    access_token VARCHAR(200) NULL DEFAULT NULL,
    exchange_token VARCHAR(200) NULL DEFAULT NULL,
    state VARCHAR(20) NOT NULL,
    identity_2fa_uuid CHAR(36) NULL DEFAULT NULL,
    identity_2fa_code VARCHAR(200) NULL DEFAULT NULL,
    expires_in INT NOT NULL DEFAULT 0,
    activated_at TIMESTAMP NULL DEFAULT NULL,
    created_at TIMESTAMP NULL DEFAULT NULL,
    updated_at TIMESTAMP NULL DEFAULT NULL,
    deleted_at TIMESTAMP NULL DEFAULT NULL,
    PRIMARY KEY (id),
    KEY identity_proxies_identity_address_foreign (identity_address),
    KEY identity_proxies_identity_2fa_uuid_foreign (identity_2fa_uuid),
    CONSTRAINT identity_proxies_identity_address_foreign FOREIGN KEY (identity_address)
        REFERENCES identities (address) ON DELETE CASCADE,
    CONSTRAINT identity_proxies_identity_2fa_uuid_foreign FOREIGN KEY (identity_2fa_uuid)
        REFERENCES identity_2fa (uuid) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE event_logs (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    loggable_type VARCHAR(191) NOT NULL,
    loggable_id BIGINT UNSIGNED NOT NULL,
    event VARCHAR(40) NOT NULL,
    identity_address VARCHAR(200) NULL DEFAULT NULL,
    data JSON NULL DEFAULT NULL,
    original TINYINT(1) NOT NULL DEFAULT 1,
    created_at TIMESTAMP NULL DEFAULT NULL,
    updated_at TIMESTAMP NULL DEFAULT NULL,
    PRIMARY KEY (id),
    KEY event_logs_loggable_type_loggable_id_index (loggable_type, loggable_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
