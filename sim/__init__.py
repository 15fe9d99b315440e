"""qmac cycle model: exact cycle counts of the generated engine, throughput reports."""
