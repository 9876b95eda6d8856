"""Batch jobs over files: CRM reverse mapping, labelled-sample validation (I/O side)."""
