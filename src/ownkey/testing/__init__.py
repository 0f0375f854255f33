"""Contract test suites and fakes shipped for the platform's own tests."""
