"""`make eval`: documents whose normative statements are known, run through the service, scored."""
