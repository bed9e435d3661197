"""A toy "text-regression" task that lives only in the tests: proof that a task is one package plus a
registry line. It predicts a number from a text with one linear layer over two features (length in
characters and in words), trains through the shared training core and reports mean squared error."""
