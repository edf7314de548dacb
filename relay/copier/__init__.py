"""The copier: claims the output copies due (``relay.copies``), streams each file from the
provider's link into the output store (``relay.outputs``) and folds the outcome back into
its task; also deletes stored copies (retention, or the account asking)."""
