"""symaffect.models"""
