"""The developer's tools: embedded stack, demo, sample clips, submit/tail client. The services never import it."""
