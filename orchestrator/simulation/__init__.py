"""`simulate` on a virtual clock: scenario files and events, the sample
portfolio, the demo."""
