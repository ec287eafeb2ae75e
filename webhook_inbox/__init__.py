"""The durable webhook inbox: a signed delivery is stored as it came (one INSERT) and answered
200 at once; workers ingest stored deliveries in batches through the channels' own idempotent
receive functions, in order per source (one number or account), retrying a failed delivery and
finally parking it with its reason for the platform admin."""
