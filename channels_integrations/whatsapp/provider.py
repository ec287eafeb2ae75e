"""The WhatsApp sender: the Cloud API for `cloud` numbers, the number's live QR-linked
session for `web` ones. Plain data in (OutboundMessage.extra carries the number's sending
details), no ORM."""

import logging

from messaging.providers import OutboundMessage, SendError, SendReceipt

from . import cloud, metrics, sessions

logger = logging.getLogger(__name__)


class WhatsAppProvider:
    def send_text(self, message: OutboundMessage) -> SendReceipt:
        details = message.extra
        to = message.to_address
        try:
            if details.get("provider") == "cloud":
                credentials = cloud.CloudCredentials(
                    details.get("phone_number_id", ""), details.get("access_token", "")
                )
                if not credentials.phone_number_id or not credentials.access_token:
                    raise SendError(
                        "This number has no Cloud API phone number id or access token yet."
                    )
                receipt = cloud.send_text(
                    credentials, to, message.body, quoted_wamid=details.get("quoted", "")
                )
            else:
                receipt = sessions.send_through_session(
                    message.source_id, message.message_id, to, message.body
                )
        except SendError as exc:
            metrics.record_error(exc.reason, details.get("company_id"))
            raise
        metrics.increment("messages_sent", details.get("company_id"))
        logger.info("whatsapp: sent message=%s number=%s", message.message_id, message.source_id)
        return receipt
