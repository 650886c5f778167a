"""Real image data for the image GAN games."""
