"""Planning rounds, the claim and send loop, batch writes, the daemon."""
