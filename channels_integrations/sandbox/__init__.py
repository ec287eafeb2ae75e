"""The sandbox: a built-in test channel, one per company, that needs no network. Its far end
is a page of ours (Settings → Sandbox) where anyone in the company plays the customer: what
they type arrives in the inbox through the one door (`ingest_inbound`), agents' replies go out
through the one send policy and show on that page, where the customer marks them delivered
or read. It lets a newcomer see receiving, replying and statuses at work offline."""

PLATFORM = "sandbox"
