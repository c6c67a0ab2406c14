"""Test-only fakes of native/device layers (never imported by the product)."""
