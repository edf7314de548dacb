-- What each finished task cost (relay.pricing), as columns so that usage totals over a time
-- range read an index, not every task's JSON. The amount is a decimal string: summed exactly
-- by the relay (relay.pricing), never as a float by the database.
ALTER TABLE tasks ADD COLUMN completed_at REAL;
ALTER TABLE tasks ADD COLUMN cost_amount TEXT;
ALTER TABLE tasks ADD COLUMN cost_currency TEXT;
CREATE INDEX tasks_account_costs ON tasks (account_id, completed_at)
    WHERE cost_amount IS NOT NULL;
