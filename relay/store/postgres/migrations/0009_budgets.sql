-- An account's optional spending limit per calendar day or month (relay.pricing.Budget), set
-- by the operator (relay accounts budget); the amount is a decimal string.
CREATE TABLE account_budgets (
    account_id text PRIMARY KEY,
    period     text NOT NULL,     -- day | month
    amount     text NOT NULL,
    currency   text NOT NULL,
    updated_at double precision NOT NULL
);
