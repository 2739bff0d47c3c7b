"""The ground floor every other package stands on: configuration, catalogue, storage, access rules, events."""
