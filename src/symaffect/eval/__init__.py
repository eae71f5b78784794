"""symaffect.eval"""
