"""The lab's local alert receiver: Slack webhook stand-in (HTTP) and SMTP inbox in one process."""
