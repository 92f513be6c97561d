"""Storage, command line and admin API of the tool registry's approvals (the policy itself is
pure, in ``detector.tools.policy``)."""
