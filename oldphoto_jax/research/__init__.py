"""Research tools: measurements of the latent space the method rests on (``docs/research.md``).

``python -m oldphoto_jax.research.latent_gap`` measures how far real old photos, synthetic old
photos and clean photos lie apart, in image space and in the VAEs' latent spaces.
"""
