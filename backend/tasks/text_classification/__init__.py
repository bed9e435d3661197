"""Text classification: a text in, one of the dataset's labels out."""
