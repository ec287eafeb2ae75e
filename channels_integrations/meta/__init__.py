"""Instagram Direct and Facebook Messenger: two channels over the Meta Graph API (the Messenger
Platform), sharing one folder: the models, the Graph client, the webhook, pages and API.
A Facebook Page is the source of `facebook` conversations, an Instagram professional account
of `instagram` ones."""

MESSENGER = "facebook"
INSTAGRAM = "instagram"
