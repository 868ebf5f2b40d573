"""cnn-derive's output side: printers, figures, the document model, templates and the command line."""
