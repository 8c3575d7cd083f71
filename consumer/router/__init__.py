"""The router process: reads the stage's input and hands each event to the GPU or the CPU pool."""
