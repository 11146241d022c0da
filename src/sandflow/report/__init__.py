"""Layer 2: figures, tables and tracking records drawn from finished jobs."""
