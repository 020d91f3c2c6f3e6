"""Reading and writing both sides: reads for 1..200 keys, child rows, Microsoft's notes, pollers."""
