"""Reinforcement learning: the Gymnasium env and the DQN's training (the 'rl' extra).

Above the wiring: the env's step is one step of the loop :mod:`sparkscaler.wiring` builds, with
the agent as its policy, so that an agent learns behind the guard it later runs behind.
"""
