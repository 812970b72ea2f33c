"""Twilio: texts and calls, and the webhooks they answer with."""
