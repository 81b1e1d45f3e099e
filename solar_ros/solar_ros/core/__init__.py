"""The SOLAR algorithm: model, inference and policy updates (torch and numpy only)."""
