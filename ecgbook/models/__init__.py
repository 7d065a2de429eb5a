"""Models of the book, in plain torch (no torchvision): see the submodules."""
