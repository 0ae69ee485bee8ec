"""The notifier, as stages: consume -> dispatch (routes, groups, silences, inhibition)
-> delivery per receiver (rate limits, retries) in each platform's format -> commit."""
