-- An account's optional spending limit per calendar day or month (relay.pricing.Budget), set
-- by the operator (relay accounts budget); the amount is a decimal string.
CREATE TABLE account_budgets (
    account_id TEXT PRIMARY KEY,
    period     TEXT NOT NULL,     -- day | month
    amount     TEXT NOT NULL,
    currency   TEXT NOT NULL,
    updated_at REAL NOT NULL
);
