"""Email to the parties without an integration: what a reminder or a decision says
in a plain message (`render`), and the SMTP connection that sends it (`smtp`).
The activities in `bespoke.activities.email` put the two together."""
