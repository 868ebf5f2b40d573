"""cnn-derive's symbolic core: spec -> network -> brute-force derivatives -> proven rules -> numbers."""
