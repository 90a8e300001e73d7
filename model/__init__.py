"""Model definitions: the architecture registry lives in ``model.architectures``."""
