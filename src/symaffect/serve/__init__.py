"""symaffect.serve"""
